from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from imgclf.api import Prediction, load
from imgclf.cli._common import console, err_console, friendly_errors, short_path
from imgclf.cli._hedge import MC_DROPOUT, TTA, hedged
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
    adapt: str = typer.Option(None, "--adapt", help="Test-time adaptation on a copy of the model (opt-in): bn "
                              "(BatchNorm statistics of the incoming batches) or tent (also entropy minimisation on "
                              "the BatchNorm affine parameters). Inputs run in a seeded shuffle, in batches of 256; "
                              "answers in input order."),
    no_backoff: bool = typer.Option(False, "--no-backoff", help="Hierarchical models: show the leaf even when it is "
                                    "unsure (default: back off to the deepest confident ancestor)."),
    tta: str = TTA,
    mc_dropout: int = MC_DROPOUT,
) -> None:
    """Predict labels for images with a trained bundle.

    Examples:

        imgclf predict runs/x/bundle photo.jpg

        imgclf predict runs/x/bundle 'shots/**/*.png' --top-k 3 --json

    Unreadable images are reported per file; the rest are still predicted (exit code 1 if any failed).
    Multi-label models list every label above its threshold; hierarchical ones add the ancestors.
    """
    clf = hedged(load(model, engine=engine), tta, mc_dropout)
    if adapt:
        clf = clf.adapted(adapt)
    preds = clf.predict(inputs, top_k=top_k, raw=raw, reject=not no_reject, backoff=not no_backoff)
    if as_json:
        print(json.dumps([p.to_dict() for p in preds], indent=2))
    else:
        console.print(_table(preds, top_k))
    if csv_path is not None:
        atomic_write_text(csv_path, _csv(preds))
    failed = [p for p in preds if p.error]
    if failed:
        err_console.print(f"{len(failed)} of {len(preds)} input(s) could not be read")
        raise typer.Exit(1)


def _answer_cell(p: Prediction) -> str:
    if p.labels is not None:  # multi-label
        return ", ".join(p.labels) or "[dim](none)[/dim]"
    if p.label == "unknown":
        why = p.reason or (f"ood {p.ood_score:.3g}" if p.ood_score is not None else "rejected")
        return f"[yellow]unknown[/yellow] ({why})"
    if p.ancestors is not None and p.label != p.leaf:
        return f"{p.label} [dim](backed off from {p.leaf})[/dim]"
    return str(p.label)


def _table(preds: list[Prediction], top_k: int) -> Table:
    multilabel = any(p.labels is not None for p in preds)
    rows = []
    for p in preds:
        if p.error:
            rows.append((p.path, "[red]error[/red]", "", p.error))
        elif p.labels is not None:
            best = sorted((p.scores or {}).items(), key=lambda kv: -kv[1])[:top_k]
            rows.append((p.path, _answer_cell(p), f"{p.score:.3f}", ", ".join(f"{k} {v:.2f}" for k, v in best)))
        else:
            rows.append((p.path, _answer_cell(p), f"{p.score:.3f}", ", ".join(f"{lab} {s:.2f}" for lab, s in p.topk)))
    # on a narrow terminal the path gives way first, cut from the left so the file name stays; numbers never cut
    widths = [max((Text.from_markup(r[k]).cell_len for r in rows), default=0) for k in range(4)]
    room = max(12, console.width - sum(widths[1:3]) - min(widths[3], 30) - 13)
    table = Table("path", "labels" if multilabel else "label", "score", "scores" if multilabel else f"top-{top_k}")
    table.columns[2].no_wrap = True
    for path, *cells in rows:
        table.add_row(short_path(path, room), *cells)
    return table


def _csv(preds: list[Prediction]) -> str:
    """``path,label,score,error`` rows; multi-label adds ``labels`` (joined by ;), hierarchies ``ancestors``."""
    multilabel = any(p.labels is not None for p in preds)
    hierarchical = any(p.ancestors is not None for p in preds)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["path", "label", "score", *(["labels"] if multilabel else []),
                *(["ancestors", "leaf"] if hierarchical else []), "error"])  # fmt: skip
    for p in preds:
        row = [p.path, p.label or "", "" if p.score is None else f"{p.score:.6f}"]
        if multilabel:
            row.append(";".join(p.labels or ()))
        if hierarchical:
            row += [";".join(p.ancestors or ()), p.leaf or ""]
        w.writerow([*row, p.error or ""])
    return buf.getvalue()
