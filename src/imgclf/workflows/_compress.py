"""``prune`` and ``distill``: smaller models, with what they cost measured side by side."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from imgclf import export as X
from imgclf import metrics as M
from imgclf.api import train_run
from imgclf.bundle import Bundle, load_bundle, save_bundle, split_samples, training_source
from imgclf.config import RunConfig, from_dict
from imgclf.errors import DataError
from imgclf.evaluation import compare_bundles, evaluate_bundle
from imgclf.models import count_parameters
from imgclf.utils import atomic_write_text


def _profile(bundle: Bundle, source: str, split: str | None = None) -> dict[str, Any]:
    """Size, speed and held-out accuracy of a bundle, measured the same way for every row of a table."""
    size = bundle.meta.preprocessing.input_size
    speed = X.benchmark_engine(X.load_engine("torch", model=bundle.model), size, batch_sizes=(1, 16), repeats=5)
    ev = evaluate_bundle(bundle, source, split=split, n_resamples=0)
    weights = Path(bundle.path) / "model.safetensors" if bundle.path else None
    return {"parameters": count_parameters(bundle.model), "gflops": X.count_flops(bundle.model, size) / 1e9,
            "size_mb": X.file_size(weights) / 1e6 if weights and weights.is_file() else None,
            "latency_ms_p50": speed.latency_ms_p50, "throughput_ips": speed.throughput_ips,
            "accuracy": ev.accuracy, "images": ev.n, "split": ev.split}  # fmt: skip


@dataclass(frozen=True)
class PruneResult:
    """Figures per stage (``rows``: before pruning, pruned before fine-tuning, fine-tuned), which pruned model was
    kept (``kept``, chosen on the validation split) and where its bundle is."""

    bundle_dir: Path
    rows: dict[str, dict[str, Any]]
    kept: str
    reason: str

    @property
    def before(self) -> dict[str, Any]:
        return self.rows["before"]

    @property
    def after(self) -> dict[str, Any]:
        return self.rows[self.kept]

    def to_dict(self) -> dict[str, Any]:
        return {"bundle_dir": str(self.bundle_dir), "rows": self.rows, "kept": self.kept, "reason": self.reason}


FINETUNE_LR_SCALE = 0.1  # recovery after pruning: a tenth of the training learning rate, no warm-up restart


def prune_bundle(path: str | Path, *, amount: float = 0.3, finetune_epochs: int = 1, data: str | None = None,
                 out: str | Path | None = None, console: Console | None = None) -> PruneResult:  # fmt: skip
    """Structured channel pruning of the bundle at ``path`` (really fewer channels), then a recovery fine-tune on
    ``data`` (default: the training data) for ``finetune_epochs`` at a tenth of the training learning rate with
    no warm-up. The pruned model before and after fine-tuning are both measured; the one with the better
    validation accuracy is kept (fine-tuning can only help, never silently hurt).

    >>> # res = prune_bundle("runs/x/bundle", amount=0.3); res.kept, res.after["accuracy"]
    """
    bundle = load_bundle(path)
    cfg = from_dict(RunConfig, bundle.meta.training)
    source = training_source(bundle.meta, data)
    size = bundle.meta.preprocessing.input_size
    pruned = X.prune_channels(bundle.model, amount, torch.zeros(1, 3, size, size))
    out_dir = Path(out) if out else Path(path).resolve().parent.parent / f"{Path(path).resolve().parent.name}-pruned"
    extra = {**bundle.meta.extra, "pruned": {"amount": amount, "from": str(Path(path).resolve())}}
    extra.pop("exports", None)  # exports of the unpruned model do not apply
    init = save_bundle(out_dir / "pruned-init", pruned, dataclasses.replace(bundle.meta, extra=extra))
    candidates = {"pruned": load_bundle(init)}
    if finetune_epochs > 0:
        optim = replace(cfg.optim, lr=cfg.optim.resolved_lr * FINETUNE_LR_SCALE, warmup_epochs=0.0)
        # the data was audited when the model was trained: no second near-duplicate search
        run_cfg = replace(cfg, data=replace(cfg.data, source=str(source), near_duplicates=False), optim=optim,
                          model=replace(cfg.model, init=str(init), weights=None),
                          train=replace(cfg.train, epochs=finetune_epochs, out=str(out_dir), name="finetune",
                                        report=False, ema=False, patience=None, adv_train="none"))  # fmt: skip
        candidates["fine-tuned"] = load_bundle(train_run(run_cfg, console=console).bundle_dir)
    rows = {"before": _profile(bundle, str(source))}
    rows.update({name: _profile(b, str(source)) for name, b in candidates.items()})
    kept, reason = "pruned", "no fine-tuning asked for"
    if "fine-tuned" in candidates:
        choice = _choice_split(bundle, str(source))  # the same split for both candidates: scanned once
        val = {n: evaluate_bundle(b, str(source), split=choice, n_resamples=0).accuracy for n, b in candidates.items()}
        kept = "fine-tuned" if val["fine-tuned"] >= val["pruned"] else "pruned"
        reason = (f"validation accuracy {val['fine-tuned']:.4f} after fine-tuning vs {val['pruned']:.4f} before; "
                  f"kept the {kept} model")  # fmt: skip
    result = PruneResult(Path(candidates[kept].path), rows, kept, reason)
    atomic_write_text(out_dir / "prune.json", json.dumps(result.to_dict(), indent=2) + "\n")
    return result


def _choice_split(bundle: Bundle, source: str) -> str | None:
    """The validation split when the data has one (choices are made on it, not on test), else the default."""
    try:
        split_samples(bundle.meta, source, "val")
    except DataError:
        return None
    return "val"


@dataclass(frozen=True)
class DistillResult:
    """Teacher, distilled student and the same student trained without a teacher, measured alike (``rows``:
    parameters, size, latency, held-out accuracy), and whether distillation made a significant difference
    (``comparison``: exact McNemar of distilled vs no-teacher student on the same images)."""

    student_bundle: Path
    rows: dict[str, dict[str, Any]]
    comparison: M.Comparison | None = None

    @property
    def accuracies(self) -> dict[str, float]:
        return {k: v["accuracy"] for k, v in self.rows.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"student_bundle": str(self.student_bundle), "accuracies": self.accuracies, "rows": self.rows,
                "comparison": self.comparison.to_dict() if self.comparison else None}  # fmt: skip


def distill(teacher: str | Path, student: str, data: str, *, cfg: RunConfig, baseline: bool = True,
            console: Console | None = None) -> DistillResult:  # fmt: skip
    """Train ``student`` on ``data`` with ``teacher``'s soft targets (a normal bundle), and — with ``baseline`` —
    the same student without a teacher, same seed; measure the three on the held-out split and test whether the
    distilled student differs significantly from the baseline.

    >>> # res = distill("runs/big/bundle", "lenet5", "data/", cfg=cfg); res.comparison.verdict
    """
    base = replace(cfg, data=replace(cfg.data, source=str(data)), model=replace(cfg.model, name=student))
    name = cfg.train.name or f"distill-{student}"
    runs = {"student (distilled)": replace(base, train=replace(base.train, name=name,
                                                                 distill_teacher=str(teacher)))}  # fmt: skip
    if baseline:
        runs["student (no teacher)"] = replace(base, train=replace(base.train, name=f"{name}-baseline"),
                                               data=replace(base.data, near_duplicates=False))  # audited once
    bundles = {"teacher": load_bundle(teacher)}
    bundles.update({label: load_bundle(train_run(run_cfg, console=console).bundle_dir)
                    for label, run_cfg in runs.items()})  # fmt: skip
    rows = {label: _profile(b, str(data)) for label, b in bundles.items()}
    comparison = None
    if baseline:
        comparison = compare_bundles(bundles["student (distilled)"], bundles["student (no teacher)"], str(data),
                                     names=("distilled", "no teacher"))  # fmt: skip
    student_bundle = Path(bundles["student (distilled)"].path)
    out = DistillResult(student_bundle, rows, comparison)
    atomic_write_text(student_bundle.parent / "distill.json", json.dumps(out.to_dict(), indent=2) + "\n")
    return out
