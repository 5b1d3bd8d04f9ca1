from __future__ import annotations

import json
from pathlib import Path

import typer

from imgclf.cli._common import console, friendly_errors
from imgclf.pretrain import METHODS, PretrainConfig, pretrain


@friendly_errors
def pretrain_cmd(
    data: str = typer.Argument(None, help="Images: a folder (class folders or loose files; labels are ignored for "
                               "training), a CSV manifest or a built-in name. Not needed with --resume."),
    method: str = typer.Option("simclr", "--method", help=f"Self-supervised method: {' | '.join(METHODS)}."),
    model: str = typer.Option("resnet18", "--model", "-m", help="Backbone architecture (see `imgclf models`)."),
    epochs: int = typer.Option(10, "--epochs", "-e", help="Passes over the images."),
    img_size: int = typer.Option(None, "--img-size", help="View size in pixels (default: the model's)."),
    batch_size: int = typer.Option(128, "--batch-size", "-b", help="Images per batch (each gives two views)."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed repeats a run on the same machine."),
    local_views: int = typer.Option(0, "--local-views", help="DINO's multi-crop: this many small crops (3/7 of "
                                    "--img-size) per image besides the two global ones, seen by the student only; "
                                    "6 is usual (each crop is a forward pass: 2.3x the time at 32 px). "
                                    "Default 0."),  # fmt: skip
    lr: float = typer.Option(None, "--lr", help="AdamW learning rate (default 2e-2 x batch size / 256)."),
    workers: int = typer.Option(None, "--workers", help="Loader worker processes (default: cores - 1)."),
    out: Path = typer.Option(None, "--out", help="The run directory to create (checkpoints, metrics, bundle/)."),
    resume: Path = typer.Option(None, "--resume", help="Continue an interrupted pretraining run exactly."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Self-supervised pretraining (SimCLR, BYOL or DINO) on unlabelled images; writes an embedding bundle.

    Each epoch logs the loss, the embeddings' spread (embed_std: near 0 means collapse) and, when DATA has
    labelled class folders, kNN accuracy on a held-out validation split.

    Examples:

        imgclf pretrain photos/ --method simclr --model resnet20_cifar --img-size 32 --epochs 20 --out runs/ssl

        imgclf pretrain --resume runs/ssl

        imgclf train labelled/ --weights runs/ssl --freeze backbone      (a linear probe on the embedding)

        imgclf train labelled/ --weights runs/ssl                        (fine-tune it)

        imgclf embed runs/ssl/bundle photos/ --out photos.parquet
    """
    if resume is None and (data is None or out is None):
        raise typer.BadParameter("give DATA and --out RUN_DIR (or --resume RUN_DIR)")
    cfg = None if resume is not None else PretrainConfig(
        source=data, method=method, model=model, epochs=epochs, img_size=img_size, batch_size=batch_size,
        seed=seed, lr=lr, workers=workers, local_views=local_views)  # fmt: skip
    result = pretrain(cfg, out, resume=resume, console=console)
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
