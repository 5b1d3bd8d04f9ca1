"""``fit``: data -> model -> training loop -> bundle. The engine knows nothing of the steps around it."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from rich.console import Console

from imgclf import data as D
from imgclf import engine as E
from imgclf import evaluation as V
from imgclf import export as X
from imgclf import monitor
from imgclf import privacy as P
from imgclf import robustness as R
from imgclf.api._run import claim_run_dir, released_on_failure, write_run_files
from imgclf.bundle import BUNDLE_FILE, WEIGHTS_FILE, Bundle, BundleMeta, load_bundle, read_meta, save_bundle
from imgclf.config import DataConfig, RunConfig, load_config, load_hierarchy, resolve_auto, to_dict
from imgclf.errors import ConfigError, DataError
from imgclf.models import (
    check_input_size,
    create_model,
    freeze_backbone,
    model_data_config,
    patch_size,
    size_args,
    split_parameters,
)
from imgclf.optim import build_optimizer, build_scheduler
from imgclf.tasks import FIT_IMAGES, Task, fit_rejection, fit_rejection_stats, make_task, needs_features
from imgclf.utils import cpu_supports_bf16, seed_everything


@dataclass(frozen=True)
class FitResult:
    """Where a finished run put its files, its final metrics, and the trained bundle in memory
    (``bundle``; ``evaluation``: the held-out evaluation the report shows)."""

    run_dir: Path
    bundle_dir: Path
    metrics: dict[str, Any]
    config: RunConfig
    bundle: Bundle | None = field(default=None, repr=False, compare=False)
    evaluation: V.Evaluation | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), "bundle_dir": str(self.bundle_dir), "metrics": self.metrics,
                "config": to_dict(self.config)}


def auto_img_size(samples: D.SampleList, default: int, pretrained: bool, console: Console, multiple: int = 8) -> int:
    """The model's size, unless the images are much smaller (and weights are not pretrained): then theirs, rounded
    up to a ``multiple`` (a ViT's patch size, so that its patches tile the image)."""
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
    size = max(16, int(-(-median // multiple) * multiple))  # round up to a multiple of 8 (or of the patch)
    console.print(f"img_size: {size} (images are about {median:.0f} px; the model's default is {default}). "
                  "Set --img-size to choose.")  # fmt: skip
    return size


def run_preprocessing(cfg: RunConfig, model: torch.nn.Module, splits: D.Splits, console: Console) -> DataConfig:
    base = model_data_config(model)
    start = pretrained_bundle(cfg)
    if start is not None and cfg.data.img_size is None:  # a pretrained backbone: the size and statistics it learnt at
        base = start[1].preprocessing
    size = cfg.data.img_size or auto_img_size(splits.train, base.input_size, cfg.model.weights is not None, console,
                                              multiple=patch_size(model) or 8)  # fmt: skip
    if size == base.input_size and cfg.data.crop_pct is None:
        return base
    return base.with_size(size, cfg.data.crop_pct)


def _loaders(cfg: RunConfig, splits: D.Splits, pre: DataConfig, info: E.DistInfo, device: torch.device,
             console: Console):  # fmt: skip
    hflip = cfg.data.augment != "none"
    sampler = D.ResumableSampler(
        splits.train.labels, seed=cfg.train.seed, balanced=cfg.data.sampler == "balanced",
        rank=info.rank, world_size=info.world_size,
    )  # fmt: skip
    has_val = splits.val is not None and len(splits.val) > 0
    val_sampler = D.ResumableSampler(splits.val.labels, seed=0, shuffle=False) if has_val else None
    if cfg.data.cache == "memory":  # (DP-SGD refuses it: privacy.check_dp_config)

        def memory(samples: D.SampleList, order: D.ResumableSampler, augment: str, what: str) -> D.MemoryLoader:
            images, labels, indices = D.decode_to_memory(samples, pre, workers=cfg.data.workers, console=console,
                                                         what=what)  # fmt: skip
            return D.MemoryLoader(images, labels, indices, order, cfg.data.batch_size, mean=pre.mean, std=pre.std,
                                  augment=augment, hflip=hflip, drop_last=what == "training images",
                                  seed=cfg.train.seed)  # fmt: skip

        train = memory(splits.train, sampler, cfg.data.augment, "training images")
        val = memory(splits.val, val_sampler, "none", "validation images") if val_sampler is not None else None
        return train, sampler, val
    train_tf = D.build_train_transform(pre, cfg.data.augment, hflip=hflip)
    eval_tf = D.build_eval_transform(pre)
    kw = {"workers": cfg.data.workers, "device_type": device.type}
    train = D.make_loader(D.IndexedDataset(splits.train, train_tf), sampler, cfg.data.batch_size, **kw)
    val = None
    if has_val:
        val = D.make_loader(D.IndexedDataset(splits.val, eval_tf), val_sampler, cfg.data.batch_size, **kw)
    return train, sampler, val


def _shared_run_dir(cfg: RunConfig, info: E.DistInfo) -> Path:
    name = [claim_run_dir(cfg).name if info.is_main else None]  # made atomically on rank 0: never overwritten
    if info.enabled:
        dist.broadcast_object_list(name, src=0)  # every rank writes to rank 0's directory
    return Path(cfg.train.out) / name[0]


def train_run(cfg: RunConfig, *, resume: Path | None = None, console: Console | None = None,
              callbacks: Sequence[E.Callback] = (), asked: Sequence[str] = ()) -> FitResult:  # fmt: skip
    """Train ``cfg`` (or continue the run in ``resume``) and write ``RUN_DIR/bundle``; ``callbacks`` join the
    built-in ones (e.g. a tuner's pruning callback, which reads the per-epoch validation metrics).

    A resume continues the run exactly as its ``config.yaml`` records, so settings ``asked`` with it (e.g.
    ``["--epochs 4"]``) are a ConfigError; a run that already finished (its bundle is written) is returned as it is,
    its bundle never rewritten.

    >>> # train_run(load_config(None, {"data": {"source": "digits"}, "model": {"name": "lenet5"}}))
    """
    console = console or Console()
    resume = E.elastic_resume(cfg, resume)  # a worker group restarted by torchrun continues from checkpoints/last
    if resume is not None:
        resume = Path(resume)
        finished = _finished_run(resume, asked, console)
        if finished is not None:
            return finished
        cfg = load_config(resume / "config.yaml")
    cfg = absolute_source(cfg)
    device = E.resolve_device(cfg.train.device)
    info = E.init_distributed(device, cfg.train.dist_timeout)
    device = E.local_device(device, info)
    seed_everything(cfg.train.seed)
    splits = D.load_source(
        cfg.data.source, val_fraction=cfg.data.val_fraction, test_fraction=cfg.data.test_fraction,
        seed=cfg.train.seed, strict=cfg.data.strict, max_per_class=cfg.data.max_per_class, task=cfg.data.task,
    )  # fmt: skip
    if cfg.data.folds:
        splits = D.kfold(splits, cfg.data.folds, cfg.data.fold, cfg.train.seed)
    num_classes = len(splits.classes)
    task = run_task(cfg, splits)
    model, extra = _initial_model(cfg, num_classes, resume, cfg.data.img_size)  # a ViT built for --img-size
    pre = run_preprocessing(cfg, model, splits, console)
    built_for = cfg.data.img_size or model_data_config(model).input_size
    if not cfg.model.init and size_args(model, pre.input_size) and pre.input_size != built_for:
        model, extra = _initial_model(cfg, num_classes, resume, pre.input_size)  # for the size chosen from the images
    check_input_size(model, cfg.model.name, pre.input_size)  # one 1-image forward pass, before any file is written
    cfg = replace(cfg, data=replace(cfg.data, img_size=pre.input_size))
    cfg = resolve_auto(cfg, train_size=len(splits.train), num_classes=num_classes, world_size=info.world_size)
    dp_layers: list[str] = []
    if cfg.train.dp_epsilon:  # DP-SGD: refuse what does not combine and swap BatchNorm before any file is written
        cfg = P.resolve_dp_auto(cfg)
        P.check_dp_config(cfg, world_size=info.world_size)
        model, dp_layers = P.dp_compatible_model(model, console if info.is_main else None)
        extra = {**extra, "norm": "groupnorm"} if dp_layers else extra
    audit = None
    if info.is_main:
        if resume is not None:
            D.record_data(resume, splits, resume=True)  # split.json: a resume refuses changed data
        summarise_data(splits, console)
        audit = audit_data(splits, console, near_duplicates=cfg.data.near_duplicates)
    if cfg.model.freeze == "backbone":
        freeze_backbone(model)
        callbacks_frozen: list[E.Callback] = [E.FrozenNorms(model)]
    else:
        callbacks_frozen = []
    backbone, head = split_parameters(model)
    model = model.to(device)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    ratio = _imbalance(splits.train)
    if ratio > 5 and cfg.data.sampler != "balanced" and cfg.train.class_weights == "none" and info.is_main:
        console.print(f"[yellow]classes are imbalanced (largest/smallest = {ratio:.1f}); consider "
                      "--set train.class_weights=balanced or --set data.sampler=balanced[/yellow]")  # fmt: skip
    loss_fn = task.build_loss(cfg.train, _targets(splits.train)).to(device)
    teacher = None
    if cfg.train.distill_teacher:
        teacher = load_bundle(cfg.train.distill_teacher, device=device)
        if teacher.meta.classes != tuple(splits.classes):
            raise DataError(f"the teacher {cfg.train.distill_teacher} has classes {teacher.meta.classes}, the data "
                            f"{tuple(splits.classes)}; distillation needs the same classes")  # fmt: skip
        loss_fn = X.DistillationObjective(loss_fn, cfg.train.distill_temperature, cfg.train.distill_alpha)
    scale = cfg.optim.backbone_lr_scale if cfg.model.weights else 1.0
    global_batch = cfg.data.batch_size * info.world_size * cfg.train.accumulate  # what one step's mean loss spans
    optimizer = build_optimizer(backbone, head, cfg.optim, backbone_lr_scale=scale, batch_size=global_batch)
    train_loader, sampler, val_loader = _loaders(cfg, splits, pre, info, device, console)
    steps = max(1, len(train_loader) // cfg.train.accumulate)
    scheduler = build_scheduler(optimizer, cfg.optim, steps, cfg.train.epochs)
    amp = E.resolve_amp(cfg.train.amp, device)
    if amp == torch.bfloat16 and device.type == "cpu" and not cpu_supports_bf16() and info.is_main:
        console.print("[yellow]train.amp=bf16 on a CPU without bf16 instructions (AVX512-BF16 or AMX): bf16 is "
                      "emulated here and trains several times slower than fp32 (7x for a ResNet-18 on a Zen 3). "
                      "Add --set train.amp=off[/yellow]", highlight=False)  # fmt: skip
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
        dist=info, task=task,
    )  # fmt: skip
    extra_callbacks, callbacks = list(callbacks), [E.GracefulStop(), *callbacks_frozen]
    if hasattr(model, "init_from_data") and cfg.model.weights is None and cfg.model.init is None:
        callbacks.insert(0, E.DataInit())  # before anything copies the weights
    mix = D.mixup_cutmix(num_classes, cfg.data.mixup, cfg.data.cutmix)
    if mix is not None:
        callbacks.append(E.BatchMix(mix))
    if cfg.train.adv_train == "pgd":
        robust_val = D.sample_tensors(splits.val, pre, 128) if splits.val else None
        callbacks.append(R.AdversarialTraining(pre, eps=cfg.train.adv_eps, steps=cfg.train.adv_steps, val=robust_val))
    if cfg.train.noise_augment:
        callbacks.append(R.GaussianNoiseAugment(cfg.train.noise_augment, pre.std))
    if teacher is not None:
        callbacks.append(X.TeacherSignal(teacher.model, loss_fn, pre, teacher.meta.preprocessing))
    if cfg.train.ema:
        callbacks.append(E.EMA(model, cfg.train.ema_decay, total_steps=steps * cfg.train.epochs))
    dp = P.make_private(state, cfg, replaced=dp_layers) if cfg.train.dp_epsilon else None
    if dp is not None:
        callbacks.append(dp)
    monitor = cfg.train.monitor if val_loader is not None else "train_loss"
    if cfg.train.patience and val_loader is not None:
        callbacks.append(E.EarlyStopping(cfg.train.monitor, cfg.train.patience))
    run_dir = resume or _shared_run_dir(cfg, info)  # claimed once the steps before training have worked
    callbacks += [*extra_callbacks, E.MetricsLogger(run_dir), E.ProgressBar(console)]
    # a fresh run that fails before its first checkpoint gives its directory back: a retry may use the same --name
    with released_on_failure(run_dir, claimed=resume is None and info.is_main):
        if info.is_main:
            if resume is None:
                D.record_data(run_dir, splits, resume=False)  # split.json
            write_run_files(run_dir, cfg, device, info)
        checkpointer = E.fit_resumable(state, callbacks, run_dir, resume=resume is not None, command="imgclf train",
                                       monitor=monitor, every_steps=cfg.train.save_every_steps,
                                       say=console.print)  # fmt: skip
    if state.stop_reason and info.is_main:
        console.print(state.stop_reason)
    result = None
    if dp is not None:
        extra = {**extra, "privacy": dp.summary()}
    if info.is_main and not state.discard:  # a discarded run (a pruned trial): no held-out passes, no bundle
        result = finish_run(cfg, task, state, splits, pre, run_dir, checkpointer, console, audit, extra)
    E.barrier(info)
    E.cleanup_distributed(info)
    return result or FitResult(run_dir, run_dir / "bundle", {}, cfg)


def _finished_run(run_dir: Path, asked: Sequence[str], console: Console) -> FitResult | None:
    """The result of the finished run in ``run_dir`` (its bundle is written), said so; None for a run to continue.
    A ConfigError when ``asked`` holds settings the resume cannot apply: a resume changes nothing, and a finished
    run is not extended (its schedule has ended) -- a new run starts from its weights instead."""
    bundle_dir = run_dir / "bundle"
    given = ", ".join(asked)
    if not (bundle_dir / BUNDLE_FILE).is_file():
        if asked:
            raise ConfigError(f"--resume continues {run_dir} exactly as its config.yaml records, so it cannot apply "
                              f"{given}; drop {'it' if len(asked) == 1 else 'them'} to continue the run, or start "
                              "a new run (another --name) with them")  # fmt: skip
        return None
    meta = read_meta(bundle_dir)
    epochs = meta.metrics.get("epochs_run", meta.training.get("train", {}).get("epochs", "?"))
    source = meta.training.get("data", {}).get("source") or "DATA"
    again = (f"start a new run from its weights: imgclf train {source} --model {meta.architecture} "
             f"--set model.init={bundle_dir} --epochs N")  # fmt: skip
    done = f"{run_dir} is complete: it trained {epochs} epoch(s) and its bundle is {bundle_dir}"
    if asked:
        raise ConfigError(f"{done}; --resume cannot apply {given} to it (a finished run is not extended, and its "
                          f"bundle is left as it is). To train further, {again}")  # fmt: skip
    console.print(f"{done}; nothing to resume, the bundle is left as it is. To train further, {again}",
                  highlight=False, soft_wrap=True)  # fmt: skip
    return FitResult(run_dir, bundle_dir, meta.metrics, load_config(run_dir / "config.yaml"))


def _initial_model(cfg: RunConfig, num_classes: int, resume: Path | None,
                   img_size: int | None = None) -> tuple[torch.nn.Module, dict[str, Any]]:  # fmt: skip
    """The model to train, and bundle extras it brings: from ``model.init`` (a bundle, pruned ones included),
    else built by name with ``model.weights`` (never re-downloaded on resume: the checkpoint holds the weights),
    for ``img_size``-pixel images when its architecture is made for one size."""
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
    start = pretrained_bundle(cfg)
    if start is not None and weights is not None:
        weights = start[0] / WEIGHTS_FILE  # the backbone of an embedding bundle; the head starts fresh
        img_size = img_size or start[1].preprocessing.input_size
    model = create_model(cfg.model.name, num_classes, weights=weights, drop_rate=cfg.model.drop_rate, img_size=img_size)
    return model, {}


def pretrained_bundle(cfg: RunConfig, *, check_architecture: bool = True) -> tuple[Path, BundleMeta] | None:
    """``(bundle dir, its meta)`` when ``model.weights`` names a bundle or run directory (``imgclf pretrain``'s
    embedding bundle, or any trained bundle); its architecture must be ``model.name``. None for other weights."""
    weights = cfg.model.weights
    if not weights or weights == "pretrained" or not Path(weights).expanduser().is_dir():
        return None
    root = Path(weights).expanduser()
    directory = root / "bundle" if (root / "bundle" / BUNDLE_FILE).is_file() else root
    meta = read_meta(directory)  # not a bundle: one error saying so
    if check_architecture and meta.architecture != cfg.model.name:
        raise ConfigError(f"--weights {weights} holds a {meta.architecture} backbone, but --model is "
                          f"{cfg.model.name}; pass --model {meta.architecture} (or leave --model out)")  # fmt: skip
    return directory, meta


def audit_data(splits: D.Splits, console: Console, *, near_duplicates: bool) -> V.AuditReport | None:
    """The data audit, once per run: counts, unreadable files, exact and near duplicates, leakage (near duplicates
    up to NEAR_DUPLICATE_LIMIT files, unless ``data.near_duplicates`` is off). Its warnings are shown now; the
    report reuses it."""
    n_files = sum(len(s) for _, s in splits.items())
    audit = V.audit_splits(splits, near_duplicates=near_duplicates and n_files <= V.NEAR_DUPLICATE_LIMIT)
    for warning in audit.warnings if audit is not None else ():
        style = "bold red" if warning.startswith("LEAKAGE") else "yellow"
        console.print(f"[{style}]{warning}[/{style}]", highlight=False)
    return audit


def absolute_source(cfg: RunConfig) -> RunConfig:
    """The data source as an absolute path when it is one, so the bundle finds its data from anywhere."""
    source = cfg.data.source
    if source and Path(source).exists():
        return replace(cfg, data=replace(cfg.data, source=str(Path(source).resolve())))
    return cfg


def run_task(cfg: RunConfig, splits: D.Splits) -> Task:
    """The kind of label: hierarchical with ``data.hierarchy``, else what the data has (``Splits.task``)."""
    if cfg.data.hierarchy:
        if splits.task != "single":
            raise ConfigError("--hierarchy needs single-label data (one leaf class per image); this data is "
                              f"{splits.task}. Drop --hierarchy or give one label per image")  # fmt: skip
        hierarchy = load_hierarchy(cfg.data.hierarchy, splits.classes)
        return make_task("hierarchical", splits.classes, hierarchy=hierarchy)
    if cfg.train.hierarchy_loss != "none":
        raise ConfigError(f"train.hierarchy_loss={cfg.train.hierarchy_loss} needs a class tree: "
                          "pass --hierarchy FILE.yaml")
    return make_task(splits.task, splits.classes)


def _imbalance(samples: D.SampleList) -> float:
    """Largest over smallest class count (positives per label for multi-label data)."""
    if not samples.is_multilabel:
        return D.imbalance_ratio(samples.labels)
    counts = samples.multi_hot.sum(0)
    present = counts[counts > 0]
    return float(present.max() / present.min()) if present.size else 1.0


def _targets(samples: Any) -> Any:
    """The training targets a task weights its loss by: class indices, or multi-hot rows."""
    return samples.multi_hot if samples.is_multilabel else samples.labels


def summarise_data(splits: D.Splits, console: Console) -> None:
    sizes = {k: len(v) for k, v in (("train", splits.train), ("val", splits.val), ("test", splits.test)) if v}
    console.print(f"data: {len(splits.classes)} classes, " + ", ".join(f"{k} {n}" for k, n in sizes.items()))
    if splits.skipped:
        console.print(f"[yellow]skipped {len(splits.skipped)} unreadable file(s); see split.json[/yellow]")


def _held_out_pass(model: torch.nn.Module, samples: D.SampleList | None, pre: DataConfig,
                   cfg: RunConfig) -> E.InferenceOutput | None:  # fmt: skip
    """Logits and features of a held-out split in one pass (None for a missing split)."""
    if samples is None or len(samples) == 0:
        return None
    return E.run_inference(model, samples, pre, batch_size=cfg.data.batch_size, workers=cfg.data.workers,
                           channels_last=cfg.train.channels_last, features=True)  # fmt: skip


def finish_run(cfg: RunConfig, task: Task, state: E.TrainState, splits: D.Splits, pre: DataConfig, run_dir: Path,
               checkpointer: E.Checkpointer, console: Console, audit: V.AuditReport | None,
               extra: dict[str, Any]) -> FitResult:  # fmt: skip
    """Load the best weights; one pass over val and one over test (logits and features together); from them the
    calibration, decision thresholds, rejection rule, metrics, drift reference, bundle and report."""
    model = state.model_for_eval()
    if checkpointer.best_path.is_file():
        tensors, _ = E.load_checkpoint(checkpointer.best_path)
        model.load_state_dict(E.unprefixed("model", tensors))
    model = model.float().eval()
    temperature, rejection, rejection_stats = None, None, {}
    metrics: dict[str, Any] = {"epochs_run": state.epoch, "skipped_images": state.skipped_images + len(splits.skipped)}
    val = _held_out_pass(model, splits.val, pre, cfg)
    test = _held_out_pass(model, splits.test, pre, cfg)
    task_record = task.to_dict()
    if val is not None:
        if cfg.train.calibrate:
            temperature, reason = task.fit_calibration(val.logits, val.labels)
            if temperature is None:
                console.print(f"[yellow]calibration skipped: {reason}[/yellow]")
        task_record.update(task.fit_decision(task.probabilities(val.logits, temperature), val.labels))
        if task.supports_rejection:
            rejection, rejection_stats = _rejection(cfg, model, splits, pre, val, temperature)
        metrics["val"] = task.summary(task.probabilities(val.logits, temperature), val.labels)
    if test is not None:
        metrics["test"] = task.summary(task.probabilities(test.logits, temperature), test.labels)
    if state.history:
        metrics["last_epoch"] = state.history[-1]
    task = make_task(task_record["kind"], task.classes, **{k: v for k, v in task_record.items() if k != "kind"})
    split_name, held_samples = V.held_out_split(splits)
    held = test if split_name == "test" else val
    extra = dict(extra)
    evaluation = None
    if held is not None:
        probs = task.probabilities(held.logits, temperature)
        extra["monitor"] = monitor.reference_stats(probs, held.features, seed=cfg.train.seed,
                                                   thresholds=task_record.get("thresholds"))  # fmt: skip
        if cfg.train.report:
            evaluation = V.analyse(held.logits, held.labels, task, temperature=temperature, split=split_name,
                                   describe=held_samples.describe, skipped=held.skipped,
                                   seed=cfg.train.seed)  # fmt: skip
    meta = BundleMeta(
        architecture=cfg.model.name, classes=tuple(splits.classes), preprocessing=pre,
        arch_args={"drop_rate": cfg.model.drop_rate, **size_args(model, pre.input_size)}, temperature=temperature,
        task=task_record, rejection=rejection, training=to_dict(cfg), metrics=metrics, data=splits.info, extra=extra,
    )  # fmt: skip
    bundle_dir = save_bundle(run_dir / "bundle", model, meta, rejection_stats)
    bundle = Bundle(model, read_meta(bundle_dir), bundle_dir, rejection_stats)
    summary = "  ".join(f"{k} {_headline(v)}" for k, v in metrics.items() if k in ("val", "test"))
    console.print(f"[green]done[/green]: {summary}  bundle: {bundle_dir}")
    if cfg.train.report:
        report = V.build_report(run_dir, bundle=bundle, evaluation=evaluation, splits=splits, audit_report=audit)
        console.print(f"report: {report.html}")
    return FitResult(run_dir, bundle_dir, metrics, cfg, bundle, evaluation)


def _rejection(cfg: RunConfig, model: torch.nn.Module, splits: D.Splits, pre: DataConfig, val: E.InferenceOutput,
               temperature: Any) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:  # fmt: skip
    """The rejection rule ``train.rejection`` with its threshold on the held-out pass ``val`` (logits and
    features); a feature rule's statistics come from one pass over a seeded sample of up to ``FIT_IMAGES``
    training images (fitting them on val too would make the threshold too tight for new images)."""
    score, stats = cfg.train.rejection, {}
    why = " (the default: no outlier images at training time; `imgclf robustness` chooses by AUROC)"
    info: dict[str, Any] = {"ood_source": "none (held-out images only)",
                            "reason": f"train.rejection={score}" + (why if score == "msp" else "")}
    if needs_features(score):
        n = min(FIT_IMAGES, len(splits.train))
        pick = np.sort(np.random.default_rng(cfg.train.seed).choice(len(splits.train), n, replace=False))
        fit = _held_out_pass(model, splits.train.subset(pick.tolist()), pre, cfg)
        stats = fit_rejection_stats(fit.features, fit.logits, fit.labels, score)
        info["fit_images"] = int(len(fit.labels))
    rule = fit_rejection(val.logits, score=score, temperature=temperature, features=val.features, stats=stats, **info)
    return rule, stats


def _headline(summary: dict[str, float]) -> str:
    """The first figure of a split summary, e.g. ``acc 0.9812``."""
    key = next(k for k in summary if k != "n")
    return f"{key} {summary[key]:.4f}"
