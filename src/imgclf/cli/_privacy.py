from __future__ import annotations

import json
from pathlib import Path

import typer

from imgclf.cli._common import console, friendly_errors
from imgclf.workflows import audit_bundle


@friendly_errors
def privacy_audit(
    model: Path = typer.Argument(..., help="A bundle directory (RUN_DIR/bundle)."),
    data: str = typer.Argument(None, help="The bundle's training data (default: the source it recorded). Members "
                               "are its training split as the bundle made it; non-members its held-out images."),
    shadows: int = typer.Option(0, "--shadows", "-k", help="Shadow models for LiRA, trained with the bundle's own "
                                "recipe on random halves of the audited images (0: loss attack only; 8-16 typical)."),
    out: Path = typer.Option(None, "--out", help="Folder for privacy_audit.json and roc.png "
                             "(default RUN_DIR/privacy)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the member/non-member sample and the shadow halves."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Membership-inference audit: can an attacker tell the bundle's training images from others?

    Runs the loss-threshold attack, LiRA with --shadows K shadow models, and a control (non-members against
    non-members; it should sit at AUC 0.5). Reports ROC AUC with a 95% interval and the true-positive rate at 0.1% and
    1% false positives, writes a log-scale ROC plot, and records the result in the bundle (report and model card).

    Examples:

        imgclf privacy-audit runs/cifar-lenet5-20260101-120000/bundle

        imgclf privacy-audit runs/x/bundle path/to/images --shadows 8 --out audit/ --json
    """
    result = audit_bundle(model, data, shadows=shadows, out=out, seed=seed, console=console)
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    console.print(result.summary(), highlight=False)
    console.print(f"ROC plot: {result.files['roc']}\nresults: {result.files['json']}")
