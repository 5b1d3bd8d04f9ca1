"""Several runs of one recipe: seeds, or stratified K-fold cross-validation, with the spread of their accuracy."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from imgclf.api import FitResult, run_name, train_run
from imgclf.config import RunConfig
from imgclf.utils import atomic_write_text


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
        if i:  # the same files: the first run's audit said what there is to say about near duplicates
            data = replace(data, near_duplicates=False)
        console.print(f"[bold]── {kind[:-1]} {i + 1} of {folds or seeds} ──[/bold]", highlight=False)
        runs.append(train_run(replace(cfg, train=train, data=data), console=console))
    metric = "val" if folds or any("test" not in r.metrics for r in runs) else "test"
    values = tuple(float(r.metrics[metric]["acc"]) for r in runs)
    result = RepeatResult(kind, f"{metric} accuracy", tuple(runs), values)
    atomic_write_text(parent / "summary.json", json.dumps(result.to_dict(), indent=2) + "\n")
    console.print(f"[bold]{result.metric} over {len(values)} {kind}: {result.mean:.4f} ± {result.std:.4f}[/bold] "
                  f"(values {', '.join(f'{v:.4f}' for v in values)}); summary: {parent / 'summary.json'}")  # fmt: skip
    return result
