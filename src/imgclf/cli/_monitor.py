from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from imgclf.cli._common import console, friendly_errors


@friendly_errors
def monitor(
    model: Path = typer.Argument(..., help="The served bundle directory (its imgclf.json holds the reference)."),
    log: Path = typer.Option(..., "--log", help="The server's JSONL audit log (rotated parts are read too)."),
    window: int = typer.Option(200, "--window", "-w", help="Predictions per window."),
    alpha: float = typer.Option(0.05, "--alpha", help="Family-wise false-alarm level per window."),
    out: Path = typer.Option(None, "--out", help="Write drift plots (PNG) into this folder."),
    all_models: bool = typer.Option(False, "--all-models", help="Also use records of other model versions."),
    as_json: bool = typer.Option(False, "--json", help="Print the per-window reports as JSON."),
    fail_on_drift: bool = typer.Option(False, "--fail-on-drift", help="Exit 1 when any window drifted."),
) -> None:
    """Check logged predictions for drift against the bundle's training-time reference.

    Each window of predictions is tested against the reference: KS on confidences, chi-square on predicted
    classes, MMD on embedding features; p-values are Bonferroni-adjusted.

    Examples:

        imgclf monitor runs/x/bundle --log audit.jsonl

        imgclf monitor runs/x/bundle --log audit.jsonl --window 500 --out drift/ --fail-on-drift
    """
    from imgclf.bundle import read_meta
    from imgclf.errors import DataError
    from imgclf.monitor import monitor_log

    meta = read_meta(model)
    reference = meta.extra.get("monitor")
    if not reference:
        raise DataError(
            f"{model} has no drift reference (imgclf.json extra.monitor); bundles get one at the end of training, "
            "or store imgclf.monitor.reference_stats(...) there with imgclf.bundle.update_meta"
        )
    result = monitor_log(reference, log, window=window, alpha=alpha, out_dir=out, class_names=meta.classes,
                         model=None if all_models else meta.weights_sha256)  # fmt: skip
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        run = list(dict.fromkeys(t.name for r in result.reports for t in r.tests))  # the tests that ran
        table = Table("#", "n", "from", "to", *(SHORT.get(t, t) for t in run), "verdict",
                      title=f"drift in {log} (alpha {alpha:g}; adjusted p-values)")  # fmt: skip
        for k, column in enumerate(table.columns):
            column.overflow = "fold"  # wrapped on a narrow terminal, never cut
            column.no_wrap = 4 <= k < 4 + len(run)  # a p-value stays on one line
        for r in result.reports:
            p = r.p_values
            cells = [f"{p[t]:.2g}" if t in p else "-" for t in run]
            verdict = "[bold red]drift[/bold red]" if r.drifted else "[green]no drift[/green]"
            table.add_row(str(r.window), str(r.n), _when(r.start), _when(r.end), *cells, verdict)
        console.print(table)
        if result.torn_lines:
            console.print(f"[yellow]{result.torn_lines} torn line(s) skipped (writes cut short)[/yellow]")
        if result.skipped_other_model:
            console.print(f"{result.skipped_other_model} record(s) of other model versions ignored (--all-models)")
        for path in result.plots:
            console.print(f"plot: {path}")
    if fail_on_drift and result.drifted:
        raise typer.Exit(1)


SHORT = {"confidence_ks": "conf KS", "class_chi2": "class chi2", "feature_mmd": "feat MMD",
         "label_rate_chi2": "labels chi2"}  # fmt: skip


def _when(stamp: str | None) -> str:
    """``2026-11-30T10:57:01.123+00:00`` -> ``11-30 10:57:01`` (fits a narrow terminal)."""
    return (stamp or "")[5:19].replace("T", " ")
