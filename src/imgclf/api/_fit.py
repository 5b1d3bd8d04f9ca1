"""``fit``: data -> model -> training loop -> bundle. The engine knows nothing of the steps around it."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from rich.console import Console

from imgclf import data as D
from imgclf import engine as E
from imgclf.api._adversarial import AdversarialTraining
from imgclf.api._distill import DistillationObjective, TeacherSignal
from imgclf.api._evaluate import checked_temperature, monitor_reference, sample_tensors, split_logits
from imgclf.api._report import audit_splits, build_report
from imgclf.api._run import claim_run_dir, run_name, write_run_files
from imgclf.bundle import BundleMeta, load_bundle, save_bundle
from imgclf.config import DataConfig, RunConfig, load_config, to_dict
from imgclf.errors import ConfigError, DataError, TrainingInterrupted
from imgclf.losses import balanced_class_weights, build_loss
from imgclf.metrics import apply_temperature
from imgclf.models import create_model, freeze_backbone, model_data_config, split_parameters
from imgclf.optim import build_optimizer, build_scheduler
from imgclf.utils import atomic_write_text, seed_everything


@dataclass(frozen=True)
class FitResult:
    """Where a finished run put its files, and its final metrics."""

    run_dir: Path
    bundle_dir: Path
    metrics: dict[str, Any]
    config: RunConfig

    def to_dict(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), "bundle_dir": str(self.bundle_dir), "metrics": self.metrics,
                "config": to_dict(self.config)}


def auto_img_size(samples: D.SampleList, default: int, pretrained: bool, console: Console) -> int:
    """The model's size, unless the images are much smaller (and weights are not pretrained): then theirs."""
    if pretrained or len(samples) == 0:
        return default
    step = max(1, len(samples) // 32)
    sides = []
    for i in range(0, len(samples), step):
        try:
            sides.append(min(samples[i][0].size))
        except DataError:
            continue
    if not sides:
        return default
    median = statistics.median(sides)
    if median >= default / 2:
        return default
    size = max(16, int(-(-median // 8) * 8))  # round up to a multiple of 8
    console.print(f"img_size: {size} (images are about {median:.0f} px; the model's default is {default}). "
                  "Set --img-size to choose.")  # fmt: skip
    return size


def _preprocessing(cfg: RunConfig, model: torch.nn.Module, splits: D.Splits, console: Console) -> DataConfig:
    base = model_data_config(model)
    size = cfg.data.img_size or auto_img_size(splits.train, base.input_size, cfg.model.weights is not None, console)
    if size == base.input_size and cfg.data.crop_pct is None:
        return base
    return base.with_size(size, cfg.data.crop_pct)


def _loaders(cfg: RunConfig, splits: D.Splits, pre: DataConfig, info: E.DistInfo, device: torch.device):
    hflip = cfg.data.augment != "none"
    train_tf = D.build_train_transform(pre, cfg.data.augment, hflip=hflip)
    eval_tf = D.build_eval_transform(pre)
    sampler = D.ResumableSampler(
        splits.train.labels, seed=cfg.train.seed, balanced=cfg.data.sampler == "balanced",
        rank=info.rank, world_size=info.world_size,
    )  # fmt: skip
    kw = {"workers": cfg.data.workers, "device_type": device.type}
    train = D.make_loader(D.IndexedDataset(splits.train, train_tf), sampler, cfg.data.batch_size, **kw)
    val = None
    if splits.val is not None and len(splits.val):
        val_sampler = D.ResumableSampler(splits.val.labels, seed=0, shuffle=False)
        val = D.make_loader(D.IndexedDataset(splits.val, eval_tf), val_sampler, cfg.data.batch_size, **kw)
    return train, sampler, val


def _shared_run_dir(cfg: RunConfig, info: E.DistInfo) -> Path:
    name = [claim_run_dir(cfg).name if info.is_main else None]  # made atomically on rank 0: never overwritten
    if info.enabled:
        dist.broadcast_object_list(name, src=0)  # every rank writes to rank 0's directory
    return Path(cfg.train.out) / name[0]


def train_run(cfg: RunConfig, *, resume: Path | None = None, console: Console | None = None) -> FitResult:
    """Train ``cfg`` (or continue the run in ``resume``) and write ``RUN_DIR/bundle``.

    >>> # train_run(load_config(None, {"data": {"source": "digits"}, "model": {"name": "lenet5"}}))
    """
    console = console or Console()
    if resume is not None:
        resume = Path(resume)
        cfg = load_config(resume / "config.yaml")
    device = E.resolve_device(cfg.train.device)
    info = E.init_distributed(device)
    device = E.local_device(device, info)
    seed_everything(cfg.train.seed)
    splits = D.load_source(
        cfg.data.source, val_fraction=cfg.data.val_fraction, test_fraction=cfg.data.test_fraction,
        seed=cfg.train.seed, strict=cfg.data.strict, max_per_class=cfg.data.max_per_class,
    )  # fmt: skip
    if cfg.data.folds:
        splits = D.kfold(splits, cfg.data.folds, cfg.data.fold, cfg.train.seed)
    num_classes = len(splits.classes)
    model, extra = _initial_model(cfg, num_classes, resume)
    pre = _preprocessing(cfg, model, splits, console)
    cfg = replace(cfg, data=replace(cfg.data, img_size=pre.input_size))
    run_dir = resume or _shared_run_dir(cfg, info)
    audit = None
    if info.is_main:
        D.record_data(run_dir, splits, resume=resume is not None)  # split.json; a resume refuses changed data
        write_run_files(run_dir, cfg, device, info)
        _summarise_data(splits, console)
        audit = _quick_audit(splits, console) if resume is None else None
    if cfg.model.freeze == "backbone":
        freeze_backbone(model)
    backbone, head = split_parameters(model)
    model = model.to(device)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    counts = D.class_counts(splits.train.labels, num_classes)
    ratio = D.imbalance_ratio(splits.train.labels)
    if ratio > 5 and cfg.data.sampler != "balanced" and cfg.train.class_weights == "none" and info.is_main:
        console.print(f"[yellow]classes are imbalanced (largest/smallest = {ratio:.1f}); consider "
                      "--set train.class_weights=balanced or --set data.sampler=balanced[/yellow]")  # fmt: skip
    weights = balanced_class_weights(counts).to(device) if cfg.train.class_weights == "balanced" else None
    loss_fn = build_loss(cfg.train.loss, label_smoothing=cfg.train.label_smoothing, class_weights=weights,
                         focal_gamma=cfg.train.focal_gamma)  # fmt: skip
    teacher = None
    if cfg.train.distill_teacher:
        teacher = load_bundle(cfg.train.distill_teacher, device=device)
        if teacher.meta.classes != tuple(splits.classes):
            raise DataError(f"the teacher {cfg.train.distill_teacher} has classes {teacher.meta.classes}, the data "
                            f"{tuple(splits.classes)}; distillation needs the same classes")  # fmt: skip
        loss_fn = DistillationObjective(loss_fn, cfg.train.distill_temperature, cfg.train.distill_alpha)
    scale = cfg.optim.backbone_lr_scale if cfg.model.weights else 1.0
    optimizer = build_optimizer(backbone, head, cfg.optim, backbone_lr_scale=scale)
    train_loader, sampler, val_loader = _loaders(cfg, splits, pre, info, device)
    steps = max(1, len(train_loader) // cfg.train.accumulate)
    scheduler = build_scheduler(optimizer, cfg.optim, steps, cfg.train.epochs)
    amp = E.resolve_amp(cfg.train.amp, device)
    wrapped = model
    if info.enabled:
        ids = [device.index] if device.type == "cuda" else None
        wrapped = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    state = E.TrainState(
        model=wrapped, raw_model=model, optimizer=optimizer, scheduler=scheduler, loss_fn=loss_fn,
        train_loader=train_loader, sampler=sampler, val_loader=val_loader, epochs=cfg.train.epochs,
        batch_size=cfg.data.batch_size, device=device, amp_dtype=amp,
        scaler=torch.amp.GradScaler("cuda") if amp == torch.float16 else None,
        channels_last=cfg.train.channels_last, grad_clip=cfg.train.grad_clip, accumulate=cfg.train.accumulate,
        dist=info,
    )  # fmt: skip
    callbacks: list[E.Callback] = [E.GracefulStop()]
    mix = D.mixup_cutmix(num_classes, cfg.data.mixup, cfg.data.cutmix)
    if mix is not None:
        callbacks.append(E.BatchMix(mix))
    if cfg.train.adv_train == "pgd":
        robust_val = sample_tensors(splits.val, pre, 128) if splits.val else None
        callbacks.append(AdversarialTraining(pre, eps=cfg.train.adv_eps, steps=cfg.train.adv_steps, val=robust_val))
    if teacher is not None:
        callbacks.append(TeacherSignal(teacher.model, loss_fn, pre, teacher.meta.preprocessing))
    if cfg.train.ema:
        callbacks.append(E.EMA(model, cfg.train.ema_decay, total_steps=steps * cfg.train.epochs))
    monitor = cfg.train.monitor if val_loader is not None else "train_loss"
    if cfg.train.patience and val_loader is not None:
        callbacks.append(E.EarlyStopping(cfg.train.monitor, cfg.train.patience))
    callbacks += [E.MetricsLogger(run_dir), E.ProgressBar(console)]
    checkpointer = E.Checkpointer(run_dir / "checkpoints", callbacks, monitor=monitor,
                                  every_steps=cfg.train.save_every_steps)  # fmt: skip
    callbacks.append(checkpointer)
    if resume is not None:
        tensors, meta = E.load_checkpoint(checkpointer.last_path)
        E.restore_state(state, callbacks, tensors, meta)
        console.print(f"resuming {run_dir} at epoch {state.epoch + 1}, batch {state.batch_in_epoch}")
    E.Trainer(state, callbacks).fit()
    if state.stop_reason == "interrupted":
        raise TrainingInterrupted(f"training interrupted; a resumable checkpoint is in {checkpointer.last_path}. "
                                  f"Continue with: imgclf train --resume {run_dir}")  # fmt: skip
    if state.stop_reason and info.is_main:
        console.print(state.stop_reason)
    result = _finish(cfg, state, splits, pre, run_dir, checkpointer, console, audit, extra) if info.is_main else None
    E.barrier(info)
    E.cleanup_distributed(info)
    return result or FitResult(run_dir, run_dir / "bundle", {}, cfg)


def _initial_model(cfg: RunConfig, num_classes: int, resume: Path | None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The model to train, and bundle extras it brings: from ``model.init`` (a bundle, pruned ones included),
    else built by name with ``model.weights`` (never re-downloaded on resume: the checkpoint holds the weights)."""
    if cfg.model.init:
        start = load_bundle(cfg.model.init)
        if start.meta.architecture != cfg.model.name:
            raise ConfigError(f"model.init={cfg.model.init} is a {start.meta.architecture}, but model.name is "
                              f"{cfg.model.name}; set --model {start.meta.architecture}")  # fmt: skip
        if start.meta.num_classes != num_classes:
            start.model.reset_classifier(num_classes)
        pruned = start.meta.extra.get("pruned")
        return start.model.train(), ({"pruned": pruned} if pruned else {})
    weights = None if resume is not None else cfg.model.weights
    return create_model(cfg.model.name, num_classes, weights=weights, drop_rate=cfg.model.drop_rate), {}


def _quick_audit(splits: D.Splits, console: Console) -> Any:
    """The cheap part of the audit before training: counts, unreadable files, exact duplicates and leakage."""
    audit = audit_splits(splits, near_duplicates=False)
    for warning in audit.warnings if audit is not None else ():
        style = "bold red" if warning.startswith("LEAKAGE") else "yellow"
        console.print(f"[{style}]{warning}[/{style}]", highlight=False)
    return audit


def _summarise_data(splits: D.Splits, console: Console) -> None:
    sizes = {k: len(v) for k, v in (("train", splits.train), ("val", splits.val), ("test", splits.test)) if v}
    console.print(f"data: {len(splits.classes)} classes, " + ", ".join(f"{k} {n}" for k, n in sizes.items()))
    if splits.skipped:
        console.print(f"[yellow]skipped {len(splits.skipped)} unreadable file(s); see split.json[/yellow]")


def _split_logits(model: torch.nn.Module, samples: D.SampleList | None, pre: DataConfig,
                  cfg: RunConfig) -> E.InferenceOutput | None:  # fmt: skip
    if samples is None or len(samples) == 0:
        return None
    return split_logits(model, samples, pre, batch_size=cfg.data.batch_size, workers=cfg.data.workers,
                        channels_last=cfg.train.channels_last)  # fmt: skip


def _accuracy(out: E.InferenceOutput, temperature: float = 1.0) -> dict[str, float]:
    probs = apply_temperature(out.logits, temperature)
    p_true = probs[np.arange(len(out.labels)), out.labels].clip(1e-12)
    return {"acc": float((probs.argmax(1) == out.labels).mean()), "nll": float(-np.log(p_true).mean()),
            "n": int(len(out.labels))}  # fmt: skip


def _finish(cfg: RunConfig, state: E.TrainState, splits: D.Splits, pre: DataConfig, run_dir: Path,
            checkpointer: E.Checkpointer, console: Console, audit: Any,
            extra: dict[str, Any]) -> FitResult:  # fmt: skip
    """Load the best weights, calibrate on val, score the test split, write the bundle."""
    model = state.model_for_eval()
    if checkpointer.best_path.is_file():
        tensors, _ = E.load_checkpoint(checkpointer.best_path)
        model.load_state_dict(E.unprefixed("model", tensors))
    model = model.float().eval()
    temperature = None
    metrics: dict[str, Any] = {"epochs_run": state.epoch, "skipped_images": state.skipped_images + len(splits.skipped)}
    val = _split_logits(model, splits.val, pre, cfg)
    if val is not None:
        if cfg.train.calibrate:
            temperature, reason = checked_temperature(val.logits, val.labels)
            if temperature is None:
                console.print(f"[yellow]calibration skipped: {reason}[/yellow]")
        metrics["val"] = _accuracy(val, temperature or 1.0)
    test = _split_logits(model, splits.test, pre, cfg)
    if test is not None:
        metrics["test"] = _accuracy(test, temperature or 1.0)
    if state.history:
        metrics["last_epoch"] = state.history[-1]
    held_out, held_logits = (splits.test, test) if test is not None else (splits.val, val)
    extra = dict(extra)
    if held_logits is not None:
        extra["monitor"] = monitor_reference(model, held_out, pre, temperature or 1.0, seed=cfg.train.seed,
                                             logits=held_logits.logits)  # fmt: skip
    meta = BundleMeta(
        architecture=cfg.model.name, classes=tuple(splits.classes), preprocessing=pre,
        arch_args={"drop_rate": cfg.model.drop_rate}, temperature=temperature, training=to_dict(cfg),
        metrics=metrics, data=splits.info, extra=extra,
    )  # fmt: skip
    bundle_dir = save_bundle(run_dir / "bundle", model, meta)
    summary = "  ".join(f"{k} acc {v['acc']:.4f}" for k, v in metrics.items() if k in ("val", "test"))
    console.print(f"[green]done[/green]: {summary}  bundle: {bundle_dir}")
    if cfg.train.report:
        report = build_report(run_dir, bundle=load_bundle(bundle_dir), audit_report=audit)
        console.print(f"report: {report.html}")
    return FitResult(run_dir, bundle_dir, metrics, cfg)


@dataclass(frozen=True)
class RepeatResult:
    """Several runs of one recipe (seeds or cross-validation folds) and the spread of their accuracy."""

    kind: str
    metric: str
    runs: tuple[FitResult, ...]
    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def std(self) -> float:
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "metric": self.metric, "values": list(self.values), "mean": self.mean,
                "std": self.std, "runs": [str(r.run_dir) for r in self.runs]}  # fmt: skip


def train_repeated(cfg: RunConfig, *, seeds: int = 1, folds: int | None = None,
                   console: Console | None = None) -> RepeatResult:  # fmt: skip
    """Train ``seeds`` times (seed, seed+1, ...) or once per fold of stratified ``folds``-fold cross-validation.

    Runs go to ``OUT/NAME/seed<i>`` or ``OUT/NAME/fold<i>``; ``OUT/NAME/summary.json`` holds mean ± std of test
    accuracy (seeds; val when there is no test split) or of each fold's held-out accuracy (folds).
    """
    console = console or Console()
    parent = Path(cfg.train.out) / run_name(cfg)
    kind = "folds" if folds else "seeds"
    runs = []
    for i in range(folds or seeds):
        train = replace(cfg.train, out=str(parent), name=f"{kind[:-1]}{i}",
                        seed=cfg.train.seed if folds else cfg.train.seed + i)  # fmt: skip
        data = replace(cfg.data, folds=folds, fold=i) if folds else cfg.data
        console.rule(f"{kind[:-1]} {i + 1} of {folds or seeds}")
        runs.append(train_run(replace(cfg, train=train, data=data), console=console))
    metric = "val" if folds or any("test" not in r.metrics for r in runs) else "test"
    values = tuple(float(r.metrics[metric]["acc"]) for r in runs)
    result = RepeatResult(kind, f"{metric} accuracy", tuple(runs), values)
    atomic_write_text(parent / "summary.json", json.dumps(result.to_dict(), indent=2) + "\n")
    console.print(f"[bold]{result.metric} over {len(values)} {kind}: {result.mean:.4f} ± {result.std:.4f}[/bold] "
                  f"(values {', '.join(f'{v:.4f}' for v in values)}); summary: {parent / 'summary.json'}")  # fmt: skip
    return result
