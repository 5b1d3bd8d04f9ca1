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
from imgclf.api import train_run
from imgclf.bundle import Bundle, load_bundle, save_bundle, training_source
from imgclf.config import RunConfig, from_dict
from imgclf.evaluation import evaluate_bundle
from imgclf.models import count_parameters
from imgclf.utils import atomic_write_text


def _profile(bundle: Bundle, source: str) -> dict[str, float]:
    size = bundle.meta.preprocessing.input_size
    speed = X.benchmark_engine(X.load_engine("torch", model=bundle.model), size, batch_sizes=(1, 16), repeats=5)
    ev = evaluate_bundle(bundle, source, n_resamples=0)
    return {"parameters": count_parameters(bundle.model), "gflops": X.count_flops(bundle.model, size) / 1e9,
            "latency_ms_p50": speed.latency_ms_p50, "throughput_ips": speed.throughput_ips,
            "accuracy": ev.metrics.accuracy}  # fmt: skip


@dataclass(frozen=True)
class PruneResult:
    """Before / after figures of a pruning run and where the pruned bundle is."""

    bundle_dir: Path
    before: dict[str, float]
    after: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"bundle_dir": str(self.bundle_dir), "before": self.before, "after": self.after}


def prune_bundle(path: str | Path, *, amount: float = 0.3, finetune_epochs: int = 1, data: str | None = None,
                 out: str | Path | None = None, console: Console | None = None) -> PruneResult:  # fmt: skip
    """Structured channel pruning of the bundle at ``path`` (really fewer channels), then fine-tuning on ``data``
    (default: the training data) for ``finetune_epochs``; parameters, FLOPs, latency and accuracy before/after."""
    bundle = load_bundle(path)
    cfg = from_dict(RunConfig, bundle.meta.training)
    source = training_source(bundle.meta, data)
    size = bundle.meta.preprocessing.input_size
    pruned = X.prune_channels(bundle.model, amount, torch.zeros(1, 3, size, size))
    out_dir = Path(out) if out else Path(path).resolve().parent.parent / f"{Path(path).resolve().parent.name}-pruned"
    extra = {**bundle.meta.extra, "pruned": {"amount": amount, "from": str(Path(path).resolve())}}
    extra.pop("exports", None)  # exports of the unpruned model do not apply
    init = save_bundle(out_dir / "pruned-init", pruned, dataclasses.replace(bundle.meta, extra=extra))
    final = init
    if finetune_epochs > 0:
        run_cfg = replace(cfg, data=replace(cfg.data, source=str(source)),
                          model=replace(cfg.model, init=str(init), weights=None),
                          train=replace(cfg.train, epochs=finetune_epochs, out=str(out_dir), name="finetune",
                                        report=False))  # fmt: skip
        final = train_run(run_cfg, console=console).bundle_dir
    before, after = _profile(bundle, str(source)), _profile(load_bundle(final), str(source))
    result = PruneResult(Path(final), before, after)
    atomic_write_text(out_dir / "prune.json", json.dumps(result.to_dict(), indent=2) + "\n")
    return result


@dataclass(frozen=True)
class DistillResult:
    """Test accuracy of the teacher, the distilled student and the same student trained without a teacher."""

    student_bundle: Path
    accuracies: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"student_bundle": str(self.student_bundle), "accuracies": self.accuracies}


def distill(teacher: str | Path, student: str, data: str, *, cfg: RunConfig, baseline: bool = True,
            console: Console | None = None) -> DistillResult:  # fmt: skip
    """Train ``student`` on ``data`` with ``teacher``'s soft targets (a normal bundle), and — with ``baseline`` —
    the same student without a teacher, same seed; compare the three on the held-out split."""
    base = replace(cfg, data=replace(cfg.data, source=str(data)), model=replace(cfg.model, name=student))
    name = cfg.train.name or f"distill-{student}"
    runs = {"student (distilled)": replace(base, train=replace(base.train, name=name,
                                                                 distill_teacher=str(teacher)))}  # fmt: skip
    if baseline:
        runs["student (no teacher)"] = replace(base, train=replace(base.train, name=f"{name}-baseline"))
    results = {label: train_run(run_cfg, console=console) for label, run_cfg in runs.items()}
    t = evaluate_bundle(load_bundle(teacher), str(data), n_resamples=0)
    accuracies = {"teacher": t.metrics.accuracy}
    for label, res in results.items():
        accuracies[label] = evaluate_bundle(load_bundle(res.bundle_dir), str(data), n_resamples=0).metrics.accuracy
    student_run = results["student (distilled)"]
    out = DistillResult(student_run.bundle_dir, accuracies)
    atomic_write_text(student_run.run_dir / "distill.json", json.dumps(out.to_dict(), indent=2) + "\n")
    return out
