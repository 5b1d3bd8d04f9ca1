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
    store: bool = typer.Option(True, "--store/--no-store", help="Store the rejection rule (and smoothing) in the "
                               "bundle."),
    certify: float = typer.Option(None, "--certify", help="Randomized smoothing with this noise std (pixels in "
                                  "[0, 1], e.g. 0.25): certified accuracy vs L2 radius; stored, predict then "
                                  "abstains as 'unknown'. Train the base with --noise-augment SIGMA."),
    certify_images: int = typer.Option(100, "--certify-images", help="Images to certify."),
    certify_samples: int = typer.Option(1000, "--certify-samples", help="Noise draws per image (Monte Carlo n)."),
    adapt: str = typer.Option(None, "--adapt", help="Also report corruption accuracy (severities 3-5) after "
                              "test-time adaptation: bn, tent, or bn,tent (needs BatchNorm layers)."),
    rule: str = typer.Option(None, "--rule", help="Store this rejection rule instead of choosing one: msp, "
                             "max_logit, energy, mahalanobis, knn, vim, or disagreement (an ensemble's members' "
                             "mutual information)."),
    fit_images: int = typer.Option(2000, "--fit-images", help="Training images the feature rejection rules are "
                                   "fitted on."),
    as_json: bool = typer.Option(False, "--json", help="Print everything as JSON."),
) -> None:
    """How easily is the model fooled, how does it degrade, and does it know what it does not know?

    FGSM, PGD (L-inf, L2), APGD-CE and Carlini-Wagner L2 over epsilon sweeps; the 15 ImageNet-C corruptions at
    5 severities; rejection rules (MSP, max-logit, energy, Mahalanobis, kNN, ViM) with AUROC and FPR@95. With
    --ood the rule of highest AUROC against those images is stored, else the one of highest AUROC against synthetic
    outliers; a feature rule's statistics go beside the weights and predict / serve answer 'unknown' below its threshold
    (--no-reject to see the raw answer). --certify adds randomized smoothing, --adapt test-time adaptation.

    Examples:

        imgclf robustness runs/x/bundle path/to/images --ood path/to/other/images

        imgclf robustness runs/x/bundle cifar_folder --max-images 128 --no-corruptions --no-store

        imgclf robustness runs/x/bundle cifar_folder --certify 0.25 --no-corruptions

        imgclf robustness runs/x/bundle cifar_folder --adapt bn,tent
    """
    eps = [parse_fraction(e, "--epsilons") for e in epsilons.split(",") if e.strip()]
    res = robustness(model, data, ood=ood, max_images=max_images, epsilons=eps, corruptions=not no_corruptions,
                     target_acceptance=acceptance, out_dir=out, store=store, certify=certify,
                     certify_images=certify_images, certify_samples=certify_samples, fit_images=fit_images, rule=rule,
                     adapt=[a.strip() for a in adapt.split(",") if a.strip()] if adapt else ())  # fmt: skip
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
    l2 = [(k, c) for k, c in res.adversarial.items() if k.endswith("l2")]
    if l2:
        table = Table("attack", *[f"ε={e:g}" for e in l2[0][1].epsilons], title="robust accuracy (L2)")
        for name, curve in l2:
            table.add_row(name, *[f"{a:.3f}" for a in curve.accuracies])
        console.print(table)
        cw = res.adversarial.get("cw-l2")
        if cw is not None and cw.options and cw.options.get("median_l2") is not None:
            console.print(f"Carlini-Wagner L2: median smallest perturbation {cw.options['median_l2']:.3f}")
    if res.corruptions is not None:
        c = res.corruptions
        console.print(f"corruptions: mean accuracy {c.mean_corruption_accuracy:.3f} (clean {c.clean_accuracy:.3f}, "
                      f"relative drop {c.relative_drop:.1%})")  # fmt: skip
    if res.adaptation is not None:
        a = res.adaptation
        rows = Table("adaptation", "clean", "corruptions (sev 3-5)", title="test-time adaptation")
        for method in [m for m in a if m != "severities"]:
            rows.add_row(method, f"{a[method]['clean_accuracy']:.3f}", f"{a[method]['mean_corruption_accuracy']:.3f}")
        console.print(rows)
    if res.certified is not None:
        c = res.certified
        cert = Table("L2 radius", *[f"{r:g}" for r in c.radii], title=f"certified accuracy (sigma {c.sigma:g}, "
                     f"{c.n} images, n = {c.samples}, abstained {c.abstain_rate:.1%})")  # fmt: skip
        cert.add_row("accuracy", *[f"{v:.3f}" for v in c.accuracies])
        console.print(cert)
    ood_table = Table("score", "AUROC", "FPR@95%TPR", title=f"out-of-distribution vs {res.ood_source}")
    for name, r in res.ood.items():
        ood_table.add_row(name, f"{r.auroc:.3f}", f"{r.fpr_at_95_tpr:.3f}")
    console.print(ood_table)
    rej = res.rejection
    stored = " — stored in the bundle" if store else ""
    console.print(f"rejection: {rej['score']} < {rej['threshold']:.4g} → unknown (accepts "
                  f"{rej['target_acceptance']:.0%} of in-distribution images){stored}; plots in {out}")  # fmt: skip
    console.print(f"why {rej['score']}: {rej['reason']}")
