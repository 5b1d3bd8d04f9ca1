from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import typer
from rich.table import Table

from imgclf.api import load
from imgclf.cli._common import console, err_console, friendly_errors
from imgclf.utils import atomic_write_text


@friendly_errors
def predict(
    model: Path = typer.Argument(..., help="A bundle directory (RUN_DIR/bundle) or an exported .onnx inside one."),
    inputs: list[str] = typer.Argument(..., help="Image files, folders (searched recursively) or globs."),
    top_k: int = typer.Option(5, "--top-k", "-k", help="How many classes to list per image."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list of {path, label, score, topk}."),
    csv_path: Path = typer.Option(None, "--csv", help="Also write path,label,score rows to this CSV file."),
    raw: bool = typer.Option(False, "--raw", help="Uncalibrated probabilities (ignore the bundle's temperature)."),
    engine: str = typer.Option("torch", "--engine", help="torch, torch-fast (channels-last + bf16/fp16) or "
                               "onnxruntime (the bundle's model.onnx)."),
    no_reject: bool = typer.Option(False, "--no-reject", help="Show the top class even for images the bundle's "
                                   "rejection rule calls unknown."),
) -> None:
    """Predict labels for images with a trained bundle.

    Examples:

        imgclf predict runs/x/bundle photo.jpg

        imgclf predict runs/x/bundle 'shots/**/*.png' --top-k 3 --json

    Unreadable images are reported per file; the rest are still predicted (exit code 1 if any failed).
    """
    clf = load(model, engine=engine)
    preds = clf.predict(inputs, top_k=top_k, raw=raw, reject=not no_reject)
    if as_json:
        print(json.dumps([p.to_dict() for p in preds], indent=2))
    else:
        table = Table("path", "label", "score", f"top-{top_k}")
        for p in preds:
            if p.error:
                table.add_row(p.path, "[red]error[/red]", "", p.error)
            else:
                label = f"[yellow]unknown[/yellow] (ood {p.ood_score:.3g})" if p.label == "unknown" else p.label
                table.add_row(p.path, label, f"{p.score:.3f}", ", ".join(f"{lab} {s:.2f}" for lab, s in p.topk))
        console.print(table)
    if csv_path is not None:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["path", "label", "score", "error"])
        for p in preds:
            w.writerow([p.path, p.label or "", "" if p.score is None else f"{p.score:.6f}", p.error or ""])
        atomic_write_text(csv_path, buf.getvalue())
    failed = [p for p in preds if p.error]
    if failed:
        err_console.print(f"{len(failed)} of {len(preds)} input(s) could not be read")
        raise typer.Exit(1)
