from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from imgclf.cli._common import console, friendly_errors
from imgclf.export import benchmark_bundle, export_bundle


@friendly_errors
def export_cmd(
    model: Path = typer.Argument(..., help="A bundle directory (RUN_DIR/bundle)."),
    format: str = typer.Option("onnx", "--format", help="Export format (onnx)."),
    quantize: str = typer.Option(None, "--quantize", help="int8 (static: calibrated on up to 128 held-out images, "
                                 "its accuracy and answer changes measured on up to 128 others) or dynamic."),
    data: str = typer.Option(None, "--data", help="Images for the parity check (default: the training data)."),
    out: Path = typer.Option(None, "--out", help="Write the files here instead of into the bundle."),
    atol: float = typer.Option(1e-3, "--atol", help="Largest allowed |logit difference| vs PyTorch."),
) -> None:
    """Export to ONNX (opset >= 18, dynamic batch, classes/preprocessing/temperature in the metadata), checked
    against PyTorch on real images: the export fails with the numbers when they disagree.

    Examples:

        imgclf export runs/x/bundle --format onnx

        imgclf export runs/x/bundle --format onnx --quantize int8
    """
    if format != "onnx":
        raise typer.BadParameter(f"--format {format!r}: only onnx is supported")
    res = export_bundle(model, quantize=quantize, data=data, out=out, atol=atol)
    p = res.parity
    console.print(f"wrote {res.onnx}: parity on {p.n} images: max |Δlogit| {p.max_abs_logit_diff:.2e}, "
                  f"top-1 agreement {p.top1_agreement:.1%}")  # fmt: skip
    if res.int8 is not None:
        q = res.quantization
        console.print(f"wrote {res.int8} ({q['mode']}): accuracy {q['accuracy_fp32']:.4f} → "
                      f"{q['accuracy_int8']:.4f} ({q['accuracy_change']:+.4f}), top-1 agreement with fp32 "
                      f"{q['agreement']:.1%} on {q['held_out_images']} held-out images; throughput "
                      f"{q['throughput_fp32']:.0f} → {q['throughput_int8']:.0f} img/s "
                      f"({q['speedup']:.2f}x)")  # fmt: skip
    for note in res.notes:
        console.print(f"[yellow]warning: {note}[/yellow]")


@friendly_errors
def benchmark_cmd(
    model: Path = typer.Argument(..., help="A bundle directory (exports inside it are benchmarked too)."),
    data: str = typer.Argument(None, help="Optional data: adds accuracy and its change per engine."),
    batch_size: int = typer.Option(32, "--batch-size", help="Batch for the throughput column."),
    repeats: int = typer.Option(10, "--repeats", help="Timed calls per figure (medians / percentiles)."),
    as_json: bool = typer.Option(False, "--json", help="Print the table as JSON."),
) -> None:
    """One table per engine / precision / format: latency p50/p90/p99 at batch 1, throughput, size, GFLOPs,
    efficiency against this machine's measured matmul peak, and accuracy when DATA is given.

    Examples:

        imgclf benchmark runs/x/bundle

        imgclf benchmark runs/x/bundle path/to/images --json
    """
    res = benchmark_bundle(model, data, batch_size=batch_size, repeats=repeats)
    if as_json:
        print(json.dumps(res, indent=2))
        return
    table = Table("engine", "precision", "file", "MB", "p50 ms", "p90 ms", "p99 ms", f"img/s @{batch_size}",
                  "efficiency (vs fp32 peak)", "accuracy", "Δ acc",
                  title=f"{res['model']} @ {res['input_size']}px: {res['parameters'] / 1e6:.2f}M params, "
                        f"{res['gflops_per_image']:.3f} GFLOPs/image, "
                        f"peak {res['peak_gflops']:.0f} GFLOP/s")  # fmt: skip
    for r in res["rows"]:
        lat = r["latency_ms"]
        acc = "" if r["accuracy"] is None else f"{r['accuracy']:.4f}"
        delta = "" if r["accuracy_change"] is None else f"{r['accuracy_change']:+.4f}"
        table.add_row(r["engine"], r["precision"], r["file"], f"{r['size_mb']:.1f}", f"{lat[0]:.2f}",
                      f"{lat[1]:.2f}", f"{lat[2]:.2f}", f"{r['throughput_ips']:.0f}", f"{r['efficiency']:.1%}", acc,
                      delta)  # fmt: skip
    console.print(table)
    if res.get("accuracy_on"):
        console.print(f"accuracy on {res['accuracy_on']}; efficiency is relative to the fp32 matmul peak, so int8 "
                      "and bf16 rows can exceed 100%")  # fmt: skip
