from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from imgclf.cli._common import console, friendly_errors, parse_fraction
from imgclf.robustness import robustness


def _show(eps: float) -> str:
    k = eps * 255
    return f"{round(k)}/255" if abs(k - round(k)) < 1e-6 else f"{eps:.4g}"


@friendly_errors
def robustness_cmd(
    model: Path = typer.Argument(..., help="A bundle directory (RUN_DIR/bundle)."),
    data: str = typer.Argument(..., help="Data to stress-test on (its test split by default)."),
    ood: Path = typer.Option(None, "--ood", help="Folder of images from outside the model's classes (default: "
                             "synthetic outliers)."),
    out: Path = typer.Option(Path("robustness"), "--out", help="Folder for robustness.json and plots."),
    max_images: int = typer.Option(256, "--max-images", help="Images to attack and corrupt (seeded sample)."),
    epsilons: str = typer.Option("0,1/255,2/255,4/255,8/255,16/255", "--epsilons", help="L-inf budgets."),
    no_corruptions: bool = typer.Option(False, "--no-corruptions", help="Skip the 15 corruptions x 5 severities."),
    acceptance: float = typer.Option(0.95, "--acceptance", help="Share of in-distribution images to accept."),
    store: bool = typer.Option(True, "--store/--no-store", help="Store the rejection threshold in the bundle."),
    as_json: bool = typer.Option(False, "--json", help="Print everything as JSON."),
) -> None:
    """How easily is the model fooled, how does it degrade, and does it know what it does not know?

    FGSM, PGD (L-inf, L2) and APGD-CE over an epsilon sweep; the 15 ImageNet-C corruptions at 5 severities;
    OOD scores (MSP, max-logit, energy, Mahalanobis, kNN) with AUROC and FPR@95. The best logit score's
    threshold is stored in the bundle, and predict then answers 'unknown' below it (--no-reject to see the raw
    answer).

    Examples:

        imgclf robustness runs/x/bundle path/to/images --ood path/to/other/images

        imgclf robustness runs/x/bundle cifar_folder --max-images 128 --no-corruptions --no-store
    """
    eps = [parse_fraction(e, "--epsilons") for e in epsilons.split(",") if e.strip()]
    res = robustness(model, data, ood=ood, max_images=max_images, epsilons=eps, corruptions=not no_corruptions,
                     target_acceptance=acceptance, out_dir=out, store=store)  # fmt: skip
    if as_json:
        print(json.dumps(res.to_dict(), indent=2))
        return
    console.print(f"clean accuracy {res.clean_accuracy:.3f} on {res.n} images")
    first = next(c for k, c in res.adversarial.items() if k.endswith("linf"))
    adv = Table("attack", *[f"ε={_show(e)}" for e in first.epsilons], title="robust accuracy (L-inf)")
    for name, curve in res.adversarial.items():
        if name.endswith("linf"):
            adv.add_row(name, *[f"{a:.3f}" for a in curve.accuracies])
    console.print(adv)
    if res.corruptions is not None:
        c = res.corruptions
        console.print(f"corruptions: mean accuracy {c.mean_corruption_accuracy:.3f} (clean {c.clean_accuracy:.3f}, "
                      f"relative drop {c.relative_drop:.1%})")  # fmt: skip
    ood_table = Table("score", "AUROC", "FPR@95%TPR", title=f"out-of-distribution vs {res.ood_source}")
    for name, r in res.ood.items():
        ood_table.add_row(name, f"{r.auroc:.3f}", f"{r.fpr_at_95_tpr:.3f}")
    console.print(ood_table)
    rej = res.rejection
    stored = " — stored in the bundle" if store else ""
    console.print(f"rejection: {rej['score']} < {rej['threshold']:.4g} → unknown (accepts "
                  f"{rej['target_acceptance']:.0%} of in-distribution images){stored}; plots in {out}")  # fmt: skip
