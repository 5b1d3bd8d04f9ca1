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
    data: str = typer.Option(None, "--data", help="Evaluate on this data instead of the run's own."),
) -> None:
    """Write RUN_DIR/report.html (self-contained, opens offline) and RUN_DIR/model_card.md.

    Examples:

        imgclf report runs/images-resnet18-20260101-120000
    """
    res = build_report(run_dir, source=data)
    console.print(f"report: {res.html}\nmodel card: {res.model_card}")


@friendly_errors
def audit_cmd(
    data: str = typer.Argument(..., help="Image-folder tree or CSV manifest."),
    model: Path = typer.Option(None, "--model", help="A bundle: also list likely label errors (cleanlab)."),
    near: bool = typer.Option(True, "--near/--no-near", help="Search near duplicates (perceptual hash)."),
    as_json: bool = typer.Option(False, "--json", help="Print the audit as JSON."),
) -> None:
    """Check a dataset: images per class, imbalance, sizes and modes, unreadable files, exact and near duplicates
    within and across splits (train/test leakage), and with --model the images whose label looks wrong.

    Examples:

        imgclf audit path/to/images

        imgclf audit path/to/images --model runs/x/bundle --json
    """
    result, issues, splits = audit(data, model=model, near_duplicates=near)
    if as_json:
        out = {"audit": result.to_dict() if result else None,
               "label_issues": issues.to_dict() if issues is not None else None}  # fmt: skip
        print(json.dumps(out, indent=2))
        return
    if result is None:
        console.print("in-memory built-in dataset: nothing to audit on disk")
    else:
        table = Table("split", "files", "unreadable", "classes", "imbalance (max/min)", title="data audit")
        for sp in result.splits:
            ratio = "" if sp.imbalance_ratio is None else f"{sp.imbalance_ratio:.1f}"
            table.add_row(sp.name, str(sp.n_files), str(sp.n_unreadable), str(len(sp.class_counts)), ratio)
        console.print(table)
        w, h = result.images.width, result.images.height
        console.print(f"sizes: width {w[0]}–{w[2]} (median {w[1]:.0f}), height {h[0]}–{h[2]} (median {h[1]:.0f}); "
                      f"modes {result.images.modes}")  # fmt: skip
        console.print(f"exact duplicate groups: {len(result.exact_duplicates)}, near duplicates: "
                      f"{result.n_near_duplicates}, leaks across splits: {result.n_leaks}")  # fmt: skip
        for warning in result.warnings:
            style = "bold red" if warning.startswith("LEAKAGE") else "yellow"
            console.print(f"[{style}]{warning}[/{style}]", highlight=False)
    if issues is not None:
        table = Table("image", "given", "suggested", "p(given)", title=f"{len(issues)} likely label errors")
        names = issues.class_names or splits.classes
        for path, g, s, c in list(zip(issues.paths, issues.given, issues.suggested, issues.self_confidence))[:50]:
            table.add_row(path, names[int(g)], names[int(s)], f"{c:.3f}")
        console.print(table)
