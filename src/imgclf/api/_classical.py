"""Training a classical baseline (``imgclf train DATA --model hog-svm``): features once per split, a grid search
on validation, then the same finish as every run (calibration, rejection rule, metrics, bundle, report)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from torch import nn

from imgclf import data as D
from imgclf import engine as E
from imgclf.api._fit import (
    FitResult,
    absolute_source,
    audit_data,
    finish_run,
    run_preprocessing,
    run_task,
    summarise_data,
)
from imgclf.api._run import claim_run_dir, write_run_files
from imgclf.config import DataConfig, RunConfig, resolve_auto
from imgclf.errors import ConfigError
from imgclf.models import ClassicalNet, create_model
from imgclf.utils import seed_everything


class _Features(nn.Module):
    """A model's features as its output, so the one inference pass batches and decodes the images."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)  # (B, D)


class _Descriptors(nn.Module):
    """Dense descriptors of each image, flattened to one row per image (for the bag-of-words vocabulary)."""

    def __init__(self, extract: Any) -> None:
        super().__init__()
        self.extract = extract
        self.anchor = nn.Parameter(torch.zeros(0))  # run_inference reads the device from a parameter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        imgs = x.float().permute(0, 2, 3, 1).cpu().numpy().astype(np.float64)
        return torch.from_numpy(np.stack([self.extract(im).reshape(-1) for im in imgs]))  # (B, n * d)


def _pass(module: nn.Module, samples: D.SampleList | None, pre: DataConfig, cfg: RunConfig) -> E.InferenceOutput | None:
    if samples is None or len(samples) == 0:
        return None
    return E.run_inference(module, samples, pre, batch_size=cfg.data.batch_size, workers=cfg.data.workers)


@dataclass
class _Fitted:
    """What :func:`~imgclf.api._fit.finish_run` reads of a training state, for a model fitted without the loop."""

    model: nn.Module
    epoch: int = 0
    skipped_images: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    def model_for_eval(self) -> nn.Module:
        return self.model


@dataclass(frozen=True)
class _NoCheckpoints:
    best_path: Path


def train_classical(cfg: RunConfig, console: Console | None = None) -> FitResult:
    """Fit the classical baseline ``cfg.model.name`` on ``cfg.data.source`` and write a run directory and bundle.

    The test split is never read before the final evaluation: the grid search scores settings on val only.

    >>> # train_classical(load_config(None, {"data": {"source": "mnist/"}, "model": {"name": "hog-svm"}}))
    """
    console = console or Console()
    cfg = absolute_source(cfg)
    seed_everything(cfg.train.seed)
    splits = D.load_source(
        cfg.data.source, val_fraction=cfg.data.val_fraction, test_fraction=cfg.data.test_fraction,
        seed=cfg.train.seed, strict=cfg.data.strict, max_per_class=cfg.data.max_per_class, task=cfg.data.task,
    )  # fmt: skip
    if splits.task != "single" or cfg.data.hierarchy:
        raise ConfigError(f"classical baseline {cfg.model.name} answers one label per image; this data is "
                          f"{splits.task}{' with a hierarchy' if cfg.data.hierarchy else ''}. Pick a network "
                          "(see `imgclf models`)")  # fmt: skip
    task = run_task(cfg, splits)
    model = create_model(cfg.model.name, len(splits.classes))
    if not isinstance(model, ClassicalNet):
        raise ConfigError(f"{cfg.model.name} is not a classical baseline")
    pre = run_preprocessing(cfg, model, splits, console)
    cfg = replace(cfg, data=replace(cfg.data, img_size=pre.input_size))
    cfg = resolve_auto(cfg, train_size=len(splits.train), num_classes=len(splits.classes), world_size=1)
    run_dir = claim_run_dir(cfg)
    D.record_data(run_dir, splits, resume=False)
    write_run_files(run_dir, cfg, torch.device("cpu"), E.DistInfo())
    summarise_data(splits, console)
    audit = audit_data(splits, console, near_duplicates=cfg.data.near_duplicates)
    if "bovw" in model.spec.features:
        console.print("bag of words: dense descriptors of the training images, k-means vocabulary")
        desc = _pass(_Descriptors(model.descriptors), splits.train, pre, cfg)
        dim = model.descriptors(np.zeros((pre.input_size, pre.input_size, 3))).shape[1]
        model.fit_vocabulary([row.reshape(-1, dim) for row in desc.logits], seed=cfg.train.seed)
    console.print(f"{cfg.model.name}: features of {len(splits.train)} training images")
    train = _pass(_Features(model), splits.train, pre, cfg)
    val = _pass(_Features(model), splits.val, pre, cfg)
    search = model.fit_head((train.logits, train.labels), (val.logits, val.labels) if val is not None else None,
                            seed=cfg.train.seed, log=console.print)  # fmt: skip
    console.print(f"chosen on val: {search['params']} (val acc {search['val_acc']:.4f})")
    state = _Fitted(model.eval(), skipped_images=train.skipped)
    extra = {"classical": {"search": search, "features": list(model.spec.features),
                           "classifier": model.spec.classifier}}  # fmt: skip
    return finish_run(cfg, task, state, splits, pre, run_dir, _NoCheckpoints(run_dir / "checkpoints" / "none"),
                      console, audit, extra)  # fmt: skip
