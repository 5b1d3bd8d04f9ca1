from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from imgclf.api import load
from imgclf.bundle import load_bundle
from imgclf.cli._common import console, friendly_errors
from imgclf.cli._hedge import MC_DROPOUT, TTA, hedged
from imgclf.evaluation import bundle_name, compare_bundles, summary_rows

SPLIT_HELP = ("test, val, train or all. Default: the held-out test split (else val) of the model's training data, "
              "or of data with its own splits (train/val/test folders, a split column); all images of other data.")
ALL_HELD_OUT = ("every image scored: {data} is not the model's training data and has no train/val/test split of its "
                "own (pass --split to score one part)")


@friendly_errors
def evaluate_cmd(
    model: Path = typer.Argument(..., help="A bundle directory (RUN_DIR/bundle)."),
    data: str = typer.Argument(..., help="Image-folder tree, CSV manifest or built-in dataset name."),
    split: str = typer.Option(None, "--split", help=SPLIT_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print every figure as JSON."),
    out: Path = typer.Option(None, "--out", help="Write evaluation.json and plots/ here."),
    groups: Path = typer.Option(None, "--groups", help="CSV path,group: adds per-group metrics and the worst gap."),
    raw: bool = typer.Option(False, "--raw", help="Uncalibrated probabilities (ignore the bundle's temperature)."),
    resamples: int = typer.Option(1000, "--resamples", help="Bootstrap resamples for the 95% intervals."),
    engine: str = typer.Option("torch", "--engine", help="torch, torch-fast or onnxruntime (model.onnx)."),
    adapt: str = typer.Option(None, "--adapt", help="Test-time adaptation on a copy of the model (opt-in): bn or "
                              "tent; the images then run in a seeded random order, in batches of 256."),
    tta: str = TTA,
    mc_dropout: int = MC_DROPOUT,
) -> None:
    """Every standard metric with 95% bootstrap intervals, calibration and the worst classes first.

    Examples:

        imgclf evaluate runs/x/bundle path/to/images

        imgclf evaluate runs/x/bundle data.csv --split all --groups sites.csv --out eval/ --json
    """
    clf = hedged(load(model, engine=engine), tta, mc_dropout)
    ev = (clf.adapted(adapt) if adapt else clf).evaluate(data, split=split, raw=raw, groups_csv=groups, out_dir=out,
                                                         n_resamples=resamples)  # fmt: skip
    if as_json:
        print(json.dumps(ev.to_dict(), indent=2))
        return
    head = Table("metric", "value [95% CI]", title=f"{ev.n} images, split {ev.split}, {ev.task} task"
                 + (f", {ev.skipped} unreadable skipped" if ev.skipped else ""))  # fmt: skip
    for name, value in summary_rows(ev):
        head.add_row(name, value)
    console.print(head)
    if split is None and ev.split == "all":
        console.print(ALL_HELD_OUT.format(data=data))
    per_class = ev.task_metrics.detail.get("per_class")
    if per_class:  # multi-label: per-class AP / precision / recall / F1
        per = Table("class", "AP", "precision", "recall", "F1", "support", title="per class")
        for row in per_class:
            per.add_row(str(row["name"]), *(f"{row[k]:.3f}" if row[k] is not None else "n/a"
                                            for k in ("average_precision", "precision", "recall", "f1")),
                        str(row["support"]))  # fmt: skip
        console.print(per)
        excluded = ev.task_metrics.detail.get("map_excluded_classes")
        if excluded:
            console.print(f"[yellow]no positives in this split, left out of mAP: {', '.join(excluded)}[/yellow]")
    if ev.metrics is None:
        return
    per = Table("class", "precision", "recall", "F1", "support", "AUC", title="per class, worst first")
    for c in ev.metrics.worst_classes():
        per.add_row(c.name, f"{c.precision:.3f}", f"{c.recall:.3f}", f"{c.f1:.3f}", str(c.support), f"{c.auc:.3f}")
    console.print(per)
    if ev.confused:
        pairs = "; ".join(f"{p.true} → {p.predicted} ({p.count})" for p in ev.confused[:5])
        console.print(f"most confused: {pairs}")
    if ev.risk is not None and ev.risk.threshold is not None:
        console.print(f"abstaining below confidence {ev.risk.threshold:.3f} keeps {ev.risk.threshold_coverage:.1%} "
                      f"of images at {ev.risk.accuracy_at_threshold:.3f} accuracy")  # fmt: skip
    if ev.rejection is not None:
        r = ev.rejection
        kept = f" at {r['accuracy_accepted']:.3f} accuracy" if "accuracy_accepted" in r else ""
        console.print(f"rejection ({r['score']}): accepts {r['accepted']:.1%} of these images{kept}; "
                      f"{r['unknown']} answered unknown")  # fmt: skip
    if ev.groups is not None:
        g = ev.groups.to_dict()
        console.print(f"groups: worst group {g['worst_group']} at {g['worst_accuracy']:.3f}, gap {g['gap']:.3f}")
    if out is not None:
        console.print(f"wrote {out / 'evaluation.json'} and {out / 'plots'}")


@friendly_errors
def calibrate_cmd(
    model: Path = typer.Argument(..., help="A bundle directory (RUN_DIR/bundle); updated in place."),
    data: str = typer.Argument(None, help="Data with a validation split (default: the bundle's training data)."),
    split: str = typer.Option("val", "--split", help="Split to fit the temperature on (val keeps test held out)."),
) -> None:
    """Fit temperature scaling (minimising NLL) and store it in the bundle; predict/evaluate then use it. The
    rejection threshold is re-chosen at the new temperature, and the drift reference follows.

    Examples:

        imgclf calibrate runs/x/bundle

        imgclf calibrate runs/x/bundle path/to/images --split val
    """
    res = load(model).calibrate(data, split=split, save=True)
    for warning in res.warnings:
        console.print(f"[yellow]warning: {warning}[/yellow]")
    t = res.temperature
    shown = f"{t:.3f}" if isinstance(t, float) else f"{len(t)} per-class temperatures"
    line = f"temperature {shown} on split {res.split}"
    if res.before is not None and res.after is not None:
        b, a = res.before, res.after
        line += f": ECE {b.ece:.4f} → {a.ece:.4f}, NLL {b.nll:.4f} → {a.nll:.4f}"
    if "rejection" in res.changes:
        line += f"; rejection threshold re-chosen ({res.changes['rejection']['threshold']:.4g})"
    console.print(f"{line}; stored in {model}")


@friendly_errors
def compare_cmd(
    model_a: Path = typer.Argument(..., help="First bundle."),
    model_b: Path = typer.Argument(..., help="Second bundle."),
    data: str = typer.Argument(..., help="Data both are evaluated on (same images)."),
    split: str = typer.Option(None, "--split", help=SPLIT_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Paired test of two models on the same images: exact McNemar and a paired bootstrap of the difference.

    Examples:

        imgclf compare runs/a/bundle runs/b/bundle path/to/images
    """
    a, b = load_bundle(model_a), load_bundle(model_b)
    cmp = compare_bundles(a, b, data, split=split)
    if as_json:
        print(json.dumps(cmp.to_dict(), indent=2))
        return
    console.print(f"A = {bundle_name(a)}: accuracy {cmp.accuracy_a:.4f}\nB = {bundle_name(b)}: accuracy "
                  f"{cmp.accuracy_b:.4f}\n"
                  f"difference A − B: {cmp.difference}  McNemar p = {cmp.mcnemar.p_value:.4g}\n"
                  f"[bold]{cmp.verdict}[/bold]")  # fmt: skip
