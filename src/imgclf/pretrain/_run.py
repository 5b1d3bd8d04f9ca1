"""``pretrain``: unlabelled images -> self-supervised backbone -> an embedding bundle, in imgclf's own loop.

The run reuses the engine whole: :class:`~imgclf.engine.Trainer` (the method module returns its loss, so the
loop's ``loss_fn`` passes it through), the resumable sampler, atomic checkpoints with exact resume, the metrics
logger and progress bar. The method (views, heads, loss) comes from lightly. The result, ``RUN_DIR/bundle``, is an
ordinary bundle of the backbone alone (``num_classes=0``; task ``embedding``): ``imgclf embed`` reads it, and
``imgclf train DATA --weights RUN_DIR [--freeze backbone]`` starts a classifier from it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import yaml
from rich.console import Console
from torch import nn

from imgclf import data as D
from imgclf import engine as E
from imgclf.bundle import BundleMeta, library_versions, save_bundle
from imgclf.config import OptimConfig
from imgclf.errors import ConfigError, DataError
from imgclf.models import create_model, is_classical, model_data_config, size_args
from imgclf.optim import build_optimizer, build_scheduler
from imgclf.pretrain._callbacks import CollapseCheck, MethodSteps
from imgclf.pretrain._config import PretrainConfig
from imgclf.pretrain._methods import build_method
from imgclf.pretrain._views import view_transform
from imgclf.utils import atomic_write_text, seed_everything

CONFIG_FILE = "config.yaml"
WRAPPERS = ("ensemble", "open_clip_image")  # built from other models / a CLIP tower config


@dataclass(frozen=True)
class PretrainResult:
    """Where the run put its files, the last epoch's metrics (``embed_std``, ``knn_acc`` ...) and its config."""

    run_dir: Path
    bundle_dir: Path
    metrics: dict[str, Any]
    config: PretrainConfig
    history: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), "bundle_dir": str(self.bundle_dir), "metrics": self.metrics,
                "config": self.config.to_dict()}  # fmt: skip


class _PassLoss(nn.Module):
    """The loop computes ``loss_fn(model(x), y)``; a method module's output already is its loss."""

    def forward(self, loss: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return loss


class _NoScore:
    """Stands in for the loop's task: views carry no labels to score (the collapse check measures quality)."""

    kind = "embedding"

    def batch_score(self, outputs: torch.Tensor, labels: torch.Tensor) -> int:
        return 0


def _load_images(cfg: PretrainConfig) -> tuple[D.SampleList, D.SampleList | None, tuple[str, ...]]:
    """``(train, labelled val or None, classes)``: a labelled source is split (val for the kNN check; labels are
    never used for training); a folder that is not a class tree is taken as loose images, all for training."""
    source = Path(cfg.source).expanduser()
    try:
        splits = D.load_source(cfg.source, val_fraction=cfg.val_fraction, test_fraction=0.0, seed=cfg.seed)
    except DataError:
        if not source.is_dir():
            raise
        paths = D.expand_inputs([source])  # a folder without images is an error naming it
        return D.SampleList.from_paths(paths, [0] * len(paths)), None, ()
    if splits.task == "multilabel":
        return splits.train, None, ()  # labels ignored; kNN needs one class per image
    return splits.train, splits.val, tuple(splits.classes)


def check_config(cfg: PretrainConfig) -> None:
    """Refuse what cannot work before any file is written (one line each)."""
    if not cfg.source:
        raise ConfigError("no data given: pass a folder of images (class folders or loose files), a CSV manifest "
                          "or a built-in name")  # fmt: skip
    if is_classical(cfg.model):
        raise ConfigError(f"--model {cfg.model} is a classical feature extractor with nothing to train; "
                          f"{cfg.method} needs a neural network (e.g. resnet20_cifar, resnet18)")  # fmt: skip
    if cfg.model in WRAPPERS:
        raise ConfigError(f"--model {cfg.model} wraps other models (it has no backbone of its own to train); "
                          f"{cfg.method} pretrains one network: pass e.g. --model resnet20_cifar")  # fmt: skip


def _backbone(cfg: PretrainConfig) -> tuple[nn.Module, dict[str, Any]]:
    probe = create_model(cfg.model, 0)
    args = size_args(probe, cfg.img_size) if cfg.img_size else {}
    model = create_model(cfg.model, 0, **args) if args else probe
    if not int(getattr(model, "num_features", 0) or 0):
        raise ConfigError(f"--model {cfg.model} exposes no pooled features (num_features); {cfg.method} needs them "
                          "for its projection head. Pick another --model")  # fmt: skip
    return model, args


def _write_run_files(run_dir: Path, cfg: PretrainConfig, device: torch.device) -> None:
    atomic_write_text(run_dir / CONFIG_FILE, yaml.safe_dump({"pretrain": cfg.to_dict()}, sort_keys=False))
    env = {"versions": library_versions(), "device": str(device), "cpu_count": os.cpu_count(),
           "torch_threads": torch.get_num_threads()}  # fmt: skip
    atomic_write_text(run_dir / "env.json", json.dumps(env, indent=2) + "\n")


def load_pretrain_config(run_dir: str | Path) -> PretrainConfig:
    """The config a pretraining run recorded (``RUN_DIR/config.yaml``)."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{path} is missing: {run_dir} is not a pretraining run directory (made by "
                          "`imgclf pretrain ... --out RUN_DIR`)")  # fmt: skip
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if "pretrain" not in data:
        raise ConfigError(f"{path} is not a pretraining config (no 'pretrain' section); a `imgclf train` run "
                          "resumes with `imgclf train --resume`")  # fmt: skip
    return PretrainConfig.from_dict(data["pretrain"])


def pretrain(cfg: PretrainConfig | None, out: str | Path | None = None, *, resume: str | Path | None = None,
             console: Console | None = None, callbacks: Sequence[E.Callback] = ()) -> PretrainResult:  # fmt: skip
    """Pretrain ``cfg.model`` on ``cfg.source`` with ``cfg.method`` into the run directory ``out`` (or continue the
    interrupted run in ``resume`` exactly); ``RUN_DIR/bundle`` is the embedding bundle.

    >>> # pretrain(PretrainConfig("photos/", "simclr", "resnet20_cifar", epochs=20, img_size=32), "runs/ssl")
    """
    console = console or Console()
    if resume is not None:
        run_dir = Path(resume)
        cfg = load_pretrain_config(run_dir)
    else:
        if cfg is None or out is None:
            raise ConfigError("pretrain needs a config and --out RUN_DIR (or --resume RUN_DIR)")
        run_dir = Path(out)
        if run_dir.exists() and any(run_dir.iterdir()):
            raise ConfigError(f"{run_dir} already exists and is not empty; runs never overwrite each other: pick "
                              f"another --out, or continue it with `imgclf pretrain --resume {run_dir}`")  # fmt: skip
    assert cfg is not None
    check_config(cfg)
    source = Path(cfg.source).expanduser()
    if source.exists():
        cfg = replace(cfg, source=str(source.resolve()))
    device = E.resolve_device(cfg.device)
    seed_everything(cfg.seed)
    train, val, classes = _load_images(cfg)
    if len(train) < cfg.batch_size:
        raise DataError(f"{cfg.source} has {len(train)} training images, fewer than one batch of {cfg.batch_size}; "
                        "lower --batch-size or add images")  # fmt: skip
    backbone, arch_args = _backbone(cfg)
    base = model_data_config(backbone)
    pre = base.with_size(cfg.img_size) if cfg.img_size and cfg.img_size != base.input_size else base
    cfg = replace(cfg, img_size=pre.input_size)
    module = build_method(cfg.method, backbone, int(backbone.num_features), out_dim=cfg.out_dim,
                          temperature=cfg.temperature, momentum=cfg.momentum, epochs=cfg.epochs,
                          local_views=cfg.local_views, global_size=pre.input_size).to(device)  # fmt: skip
    run_dir.mkdir(parents=True, exist_ok=True)
    if resume is None:
        _write_run_files(run_dir, cfg, device)
    console.print(f"pretrain {cfg.method} on {len(train)} images ({cfg.model}, {pre.input_size} px); "
                  + (f"kNN check on {len(val)} labelled val images" if val is not None else "no labelled val split: "
                     "collapse check by embedding spread only"), highlight=False)  # fmt: skip
    trainable = [p for p in module.parameters() if p.requires_grad]
    optim_cfg = OptimConfig(optimizer="adamw", lr=cfg.resolved_lr(), weight_decay=cfg.weight_decay,
                            warmup_epochs=cfg.warmup_epochs)  # fmt: skip
    optimizer = build_optimizer(trainable, [], optim_cfg)
    sampler = D.ResumableSampler(train.labels, seed=cfg.seed)
    views = view_transform(cfg.method, pre, cfg.local_views)
    loader = D.make_loader(D.IndexedDataset(train, views), sampler, cfg.batch_size,
                           workers=cfg.workers, device_type=device.type, drop_last=True)  # fmt: skip
    scheduler = build_scheduler(optimizer, optim_cfg, max(1, len(loader)), cfg.epochs)
    state = E.TrainState(model=module, raw_model=module, optimizer=optimizer, scheduler=scheduler,
                         loss_fn=_PassLoss(), train_loader=loader, sampler=sampler, val_loader=None,
                         epochs=cfg.epochs, batch_size=cfg.batch_size, device=device, task=_NoScore())  # fmt: skip
    check = CollapseCheck(backbone, pre, train, val, num_classes=len(classes), limit=cfg.check_images,
                          k=cfg.knn_k, console=console)  # fmt: skip
    cbs: list[E.Callback] = [E.GracefulStop(), MethodSteps(), *callbacks, E.ProgressBar(console), check,
                             E.MetricsLogger(run_dir)]  # fmt: skip
    E.fit_resumable(state, cbs, run_dir, resume=resume is not None, command="imgclf pretrain", monitor="train_loss",
                    say=console.print)  # fmt: skip
    metrics = dict(state.history[-1]) if state.history else {}
    source = Path(cfg.source).expanduser()
    meta = BundleMeta(architecture=cfg.model, classes=(), preprocessing=pre, arch_args=arch_args,
                      task={"kind": "embedding"}, training={"pretrain": cfg.to_dict()}, metrics=metrics,
                      data={"kind": "pretrain", "root": str(source.resolve()) if source.exists() else cfg.source},
                      extra={"pretrain": {"method": cfg.method, "epochs": state.epoch,
                                          "images": len(train)}})  # fmt: skip
    bundle_dir = save_bundle(run_dir / "bundle", backbone.cpu().eval(), meta)
    console.print(f"wrote the embedding bundle {bundle_dir}; next: imgclf train DATA --weights {run_dir} "
                  "[--freeze backbone]", highlight=False)  # fmt: skip
    return PretrainResult(run_dir, bundle_dir, metrics, cfg, list(state.history))
