from __future__ import annotations

import json
from pathlib import Path

import typer

from imgclf.cli._common import console, err_console, friendly_errors
from imgclf.workflows import RowSettings, batch_predict


@friendly_errors
def batch(
    model: Path = typer.Argument(..., help="A bundle directory (RUN_DIR/bundle) or an exported .onnx inside one."),
    inputs: list[str] = typer.Argument(..., help="Image files, folders (searched recursively) or globs."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder of parquet parts, e.g. preds.parquet "
                             "(read it with pandas.read_parquet). Rerunning the same job resumes it."),
    engine: str = typer.Option("torch", "--engine", help="torch, torch-fast or onnxruntime, as for predict."),
    ray: str = typer.Option(None, "--ray", help="Run on a Ray cluster: its address (auto, HOST:PORT, "
                            "ray://HOST:10001) or 'local'. Needs the 'batch' extra."),
    ray_actors: int = typer.Option(None, "--ray-actors", help="Model-holding actors with --ray (default: one per "
                                   "CPU of the cluster)."),
    top_k: int = typer.Option(5, "--top-k", "-k", help="How many classes to keep per image."),
    raw: bool = typer.Option(False, "--raw", help="Uncalibrated probabilities (ignore the bundle's temperature)."),
    no_reject: bool = typer.Option(False, "--no-reject", help="Keep the top class for images the bundle's "
                                   "rejection rule calls unknown."),
    no_probabilities: bool = typer.Option(False, "--no-probabilities", help="Leave out the column of every "
                                          "class's probability (keep only the top-k)."),
    batch_size: int = typer.Option(64, "--batch-size", "-b", help="Images per model call."),
    workers: int = typer.Option(None, "--workers", help="Decode processes feeding the model (default: CPUs - 1)."),
    shard_size: int = typer.Option(4096, "--shard-size", help="Images per parquet part: the unit of resuming."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Predict many images into a parquet dataset: a streaming pipeline here, or Ray Data on a cluster.

    One row per image with the fields of `imgclf predict --json` (path, label, score, topk, probabilities,
    unknown, ood_score) and `error` for files that cannot be read (listed, not fatal).

    Examples:

        imgclf batch runs/x/bundle photos/ --out preds.parquet

        imgclf batch runs/x/bundle 'shots/**/*.jpg' --out preds.parquet --engine onnxruntime --workers 6

        imgclf batch runs/x/bundle /shared/images --out /shared/preds.parquet --ray auto
    """
    settings = RowSettings(top_k=top_k, raw=raw, reject=not no_reject, probabilities=not no_probabilities)
    result = batch_predict(model, inputs, out, engine=engine, settings=settings, batch_size=batch_size,
                           workers=workers, shard_size=shard_size, ray_address=ray, ray_actors=ray_actors,
                           console=err_console, progress=not as_json)  # fmt: skip
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    resumed = f", {result.shards_skipped} part(s) kept from an earlier run" if result.shards_skipped else ""
    console.print(f"{result.images} rows in {result.out} ({result.shards} part(s){resumed}); "
                  f"{result.new_images} predicted now at {result.images_per_s:.1f} img/s")  # fmt: skip
    if result.errors:
        err_console.print(f"[yellow]{result.errors} file(s) could not be read: their rows carry the reason in "
                          "the 'error' column[/yellow]")  # fmt: skip
