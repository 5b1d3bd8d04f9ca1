from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from imgclf.api import Classifier
from imgclf.cli._common import console, friendly_errors
from imgclf.workflows import distill, prune_bundle


@friendly_errors
def prune_cmd(
    model: Path = typer.Argument(..., help="A bundle directory (RUN_DIR/bundle)."),
    amount: float = typer.Option(0.3, "--amount", help="Share of prunable channels to remove (0-1)."),
    finetune_epochs: int = typer.Option(1, "--finetune-epochs", help="Fine-tuning epochs after pruning (0: none)."),
    data: str = typer.Option(None, "--data", help="Data to fine-tune and measure on (default: the training data)."),
    out: Path = typer.Option(None, "--out", help="Output folder (default: RUN_DIR-pruned next to the run)."),
) -> None:
    """Structured channel pruning that really shrinks the network, then fine-tuning; prints parameters, FLOPs,
    latency and accuracy before and after.

    Examples:

        imgclf prune runs/x/bundle --amount 0.3 --finetune-epochs 2
    """
    res = prune_bundle(model, amount=amount, finetune_epochs=finetune_epochs, data=data, out=out, console=console)
    console.print(_table("pruning", res.rows, kept=res.kept))
    console.print(f"{res.reason}\npruned bundle: {res.bundle_dir}")


@friendly_errors
def distill_cmd(
    data: str = typer.Argument(..., help="Training data (folder, CSV or built-in name)."),
    teacher: Path = typer.Option(..., "--teacher", help="The teacher bundle."),
    student: str = typer.Option(..., "--student", help="Student architecture (see `imgclf models`)."),
    epochs: int = typer.Option(None, "--epochs", help="Training epochs."),
    img_size: int = typer.Option(None, "--img-size", help="Student input size."),
    temperature: float = typer.Option(4.0, "--temperature", help="Softening temperature."),
    alpha: float = typer.Option(0.7, "--alpha", help="Weight of the soft-target loss (1 - alpha: hard labels)."),
    baseline: bool = typer.Option(True, "--baseline/--no-baseline", help="Also train the student alone."),
    out: str = typer.Option(None, "--out", help="Parent folder of the run directories."),
    sets: list[str] = typer.Option([], "--set", "-s", help="Config overrides, as for train."),
) -> None:
    """Knowledge distillation: train a student on the teacher's soft targets (a normal bundle) and compare
    student, teacher and the same student trained without a teacher.

    Examples:

        imgclf distill path/to/images --teacher runs/big/bundle --student resnet20_cifar --epochs 10
    """
    extra = [f"train.distill_temperature={temperature}", f"train.distill_alpha={alpha}"]
    cfg = Classifier(sets=[*extra, *sets], epochs=epochs, img_size=img_size, out=out).resolved_config(data)
    res = distill(teacher, student, data, cfg=cfg, baseline=baseline, console=console)
    console.print(_table("distillation", res.rows))
    if res.comparison is not None:
        console.print(f"distilled vs no teacher: {res.comparison.verdict}")
    console.print(f"student bundle: {res.student_bundle}")


def _table(title: str, rows: dict[str, dict], kept: str | None = None) -> Table:
    """One row per model: parameters, GFLOPs, size, latency, throughput, held-out accuracy (with its image count)."""
    first = next(iter(rows.values()))
    table = Table("model", "parameters", "GFLOPs", "size (MB)", "latency p50 (ms)", "img/s",
                  f"accuracy ({first['split']}, {first['images']} images)", title=title)  # fmt: skip
    for label, d in rows.items():
        size = "" if d.get("size_mb") is None else f"{d['size_mb']:.2f}"
        name = f"{label} [green](kept)[/green]" if label == kept else label
        table.add_row(name, f"{d['parameters']:,}", f"{d['gflops']:.4f}", size, f"{d['latency_ms_p50']:.2f}",
                      f"{d['throughput_ips']:.0f}", f"{d['accuracy']:.4f}")  # fmt: skip
    return table
