from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from imgclf.cli._common import console, friendly_errors
from imgclf.evaluation import audit, build_report


@friendly_errors
def report(
    run_dir: Path = typer.Argument(..., help="A run directory made by `imgclf train`."),
    data: str = typer.Option(None, "--data", help="Evaluate on this data instead of the run's own: its test split "
                             "(else val) when it has train/val/test folders or a split column, else every image."),
) -> None:
    """Write RUN_DIR/report.html (self-contained, opens offline) and RUN_DIR/model_card.md.

    Examples:

        imgclf report runs/images-resnet18-20260101-120000
    """
    res = build_report(run_dir, source=data)
    ev = res.evaluation
    where = "" if ev is None else f"evaluated: {ev.n} images, split {ev.split}\n"
    console.print(f"{where}report: {res.html}\nmodel card: {res.model_card}")


@friendly_errors
def audit_cmd(
    data: str = typer.Argument(..., help="Image-folder tree or CSV manifest."),
    model: Path = typer.Option(
        None,
        "--model",
        help="A bundle: also rank likely label errors (cross-validated probabilities on its frozen features).",
    ),
    near: bool = typer.Option(True, "--near/--no-near", help="Search near duplicates (perceptual hash)."),
    as_json: bool = typer.Option(False, "--json", help="Print the audit as JSON."),
) -> None:
    """Check a dataset: images per class, imbalance, sizes and modes, unreadable files, exact and near duplicates
    within and across splits (train/test leakage), and with --model the images whose label looks wrong.

    Examples:

        imgclf audit path/to/images

        imgclf audit path/to/images --model runs/x/bundle --json
    """
    result, labels, splits = audit(data, model=model, near_duplicates=near)
    if as_json:
        out = {"audit": result.to_dict() if result else None,
               "label_issues": labels.to_dict() if labels is not None else None}  # fmt: skip
        print(json.dumps(out, indent=2))
        return
    if result is None:
        console.print("in-memory built-in dataset: nothing to audit on disk")
    else:
        table = Table("split", "files", "unreadable", "classes", "imbalance (max/min)", title="data audit")
        for sp in result.splits:
            ratio = "" if sp.imbalance_ratio is None else f"{sp.imbalance_ratio:.1f}"
            table.add_row(sp.name, str(sp.n_files), str(sp.n_unreadable), str(len(sp.class_counts)), ratio)
        skipped = [u for u in result.unreadable if u.file.split == "skipped"]
        if skipped:  # unreadable before any split was drawn: in no split's row
            table.add_row("(skipped)", str(len(skipped)), str(len(skipped)), "", "")
        console.print(table)
        w, h = result.images.width, result.images.height
        console.print(f"sizes: width {w[0]}–{w[2]} (median {w[1]:.0f}), height {h[0]}–{h[2]} (median {h[1]:.0f}); "
                      f"modes {result.images.modes}")  # fmt: skip
        _print_duplicates(result)
    if labels is not None:
        issues = labels.issues
        table = Table("image", "given", "suggested", "label quality", title=f"{len(issues)} likely label errors")
        for path, given, suggested, confidence in issues.rows()[:50]:
            table.add_row(path, given, suggested, f"{confidence:.3f}")
        console.print(table)
        console.print(f"probabilities: {labels.method}; out-of-fold accuracy {labels.oof_accuracy:.3f}",
                      highlight=False)  # fmt: skip


def _print_duplicates(result) -> None:  # noqa: ANN001 - an AuditReport
    """Duplicate tiers with counts and the thresholds used, the pairs (train copy first), then the warnings."""
    t, st = result.tiers, result.settings
    console.print(f"duplicates: {t['exact']} exact pairs ({len(result.exact_duplicates)} groups), "
                  f"{t['confirmed near']} confirmed near copies, {t['look-alike']} look-alikes (not leakage); "
                  f"{result.n_leaks} leaks across splits", highlight=False)  # fmt: skip
    if st.get("near_duplicates"):
        console.print(f"thresholds: pHash candidates within {st['max_bits']} bits; confirmed when aligned "
                      f"correlation >= {st['min_score']} and no pixel off by more than {st['max_peak']:.0%} of the "
                      f"grey range ({st['low_entropy_min_score']} and {st['low_entropy_max_peak']:.0%} for "
                      f"low-content images, grey entropy < {st['low_entropy_bits']} bits); look-alikes correlate "
                      f">= {st['look_alike_score']}", highlight=False, style="dim")  # fmt: skip
    if result.leakage:
        table = Table("kind", "first copy", "second copy", "similarity", title="cross-split copies (leakage)")
        for leak in result.leakage[:30]:
            table.add_row(leak.kind, str(leak.a), str(leak.b), f"{leak.score:.3f}")
        console.print(table)
    cross = [p for p in result.look_alikes if p.a.split != p.b.split]
    if cross:
        table = Table(
            "first",
            "second",
            "similarity",
            "pixel peak",
            title=f"{result.n_cross_look_alikes} cross-split look-alikes (information, not leakage)",
        )
        for p in cross[:10]:
            table.add_row(str(p.a), str(p.b), f"{p.score:.3f}", f"{p.peak:.0%}")
        console.print(table)
    for warning in result.warnings:
        style = "bold red" if warning.startswith("LEAKAGE") else "yellow"
        console.print(f"[{style}]{warning}[/{style}]", highlight=False)
