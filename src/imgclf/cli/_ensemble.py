from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from imgclf.cli._common import console, err_console, friendly_errors
from imgclf.workflows import DISAGREEMENT_FILE, build_ensemble


@friendly_errors
def ensemble_cmd(
    bundles: list[Path] = typer.Argument(..., help="Two or more bundle directories trained on the same classes."),
    out: Path = typer.Option(..., "--out", help="Folder for the ensemble bundle."),
    data: str = typer.Option(None, "--data", help="Data to calibrate and measure on (default: the first member's "
                             "training data)."),
    split: str = typer.Option("val", "--split", help="Split to calibrate and measure on (never test by default)."),
    rule: str = typer.Option("msp", "--rule", help="Rejection rule to store: msp, or disagreement (the members' "
                             "mutual information: high-disagreement images are answered 'unknown')."),
    acceptance: float = typer.Option(0.95, "--acceptance", help="Share of the split's images the rule accepts."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """Average the probabilities of several bundles in ONE bundle (predict, evaluate, export and serve use it as
    any other); calibrate it and measure member disagreement (mutual information) per image.

    Examples:

        imgclf ensemble runs/a/bundle runs/b/bundle runs/c/bundle --out runs/ens

        imgclf ensemble runs/a/bundle runs/b/bundle --out runs/ens --rule disagreement

    Per-image disagreement on the split is written to OUT/disagreement.csv; high values flag images the members
    answer differently; --rule disagreement stores it as the rejection rule (or later: imgclf robustness OUT DATA
    --rule disagreement).
    """
    res = build_ensemble([str(b) for b in bundles], out, data=data, split=split, rule=rule,
                         target_acceptance=acceptance, console=err_console if as_json else console)  # fmt: skip
    if as_json:
        print(json.dumps(res.to_dict(), indent=2))
        return
    table = Table("model", "accuracy", "NLL", "images", title=f"ensemble on {res.split}")
    for name, row in res.rows.items():
        acc = row.get("acc", row.get("accuracy", float("nan")))
        table.add_row(name, f"{acc:.4f}", f"{row.get('nll', float('nan')):.4f}", str(row.get("n", "")))
    console.print(table)
    auroc = "n/a" if res.disagreement_auroc is None else f"{res.disagreement_auroc:.3f}"
    console.print(f"mean disagreement {res.mean_disagreement:.4f} nats; it flags the ensemble's errors with AUROC "
                  f"{auroc}; per image: {Path(res.bundle_dir) / DISAGREEMENT_FILE}")
    console.print(f"ensemble bundle: {res.bundle_dir}")
