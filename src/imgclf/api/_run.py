"""Run directories: naming, resolved config, environment record."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import torch
from rich.console import Console

from imgclf.bundle import library_versions
from imgclf.config import RunConfig, to_yaml
from imgclf.engine import DistInfo
from imgclf.errors import ConfigError
from imgclf.utils import atomic_write_text

#: What a run writes before its first checkpoint: a directory holding nothing else may be given back on failure.
START_FILES = frozenset({"config.yaml", "env.json", "split.json", "metrics.jsonl", "metrics.csv", "tensorboard",
                         "checkpoints"})  # fmt: skip


def run_name(cfg: RunConfig) -> str:
    """``<data>-<model>-<timestamp>`` unless ``train.name`` is set."""
    if cfg.train.name:
        return cfg.train.name
    data = Path(cfg.data.source.rstrip("/")).stem or "data"
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{data}-{cfg.model.name}").strip("-")
    return f"{slug}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def claim_run_dir(cfg: RunConfig, console: Console | None = None) -> Path:
    """Create ``OUT/NAME`` (see :func:`run_name`) and return it; an existing run directory is never reused.

    The directory is made without ``exist_ok``: that mkdir is the claim, so of two runs started in parallel with
    the same name exactly one gets it. A name the user chose (``train.name`` / ``--name``) that is taken raises
    a ConfigError (exit 2); a generated, timestamped one gets a ``-2``, ``-3`` ... suffix and says so.

    >>> # claim_run_dir(load_config(None, {"train": {"name": "exp1"}}))  -> runs/exp1, or ConfigError if it exists
    """
    out = Path(cfg.train.out)
    out.mkdir(parents=True, exist_ok=True)
    name = run_name(cfg)
    for attempt in range(1, 1000):
        candidate = out / (name if attempt == 1 else f"{name}-{attempt}")
        try:
            candidate.mkdir()
        except FileExistsError:
            if cfg.train.name:
                raise ConfigError(f"{candidate} already exists and runs never overwrite each other: choose another "
                                  f"--name, continue it with `imgclf train --resume {candidate}`, or delete "
                                  "it") from None  # fmt: skip
            continue
        if attempt > 1:
            note = f"[yellow]{out / name} is taken; this run writes to {candidate}[/yellow]"
            (console or Console(stderr=True)).print(note, highlight=False, soft_wrap=True)
        return candidate
    raise ConfigError(f"{out / name} and 998 numbered variants exist: clean up {out} or set --name")


@contextmanager
def released_on_failure(run_dir: Path, *, claimed: bool) -> Iterator[None]:
    """Remove ``run_dir`` when the block fails before the run's first checkpoint, so that a retry with the same
    ``--name`` is not refused: only a directory this process ``claimed`` (not a resumed one), holding nothing but
    :data:`START_FILES` and no checkpoint. Anything else (a checkpoint, a file a person put there) keeps it all.

    >>> # with released_on_failure(run_dir, claimed=True): write_run_files(...); train(...)
    """
    try:
        yield
    except BaseException:
        if claimed and run_dir.is_dir():
            checkpoints = run_dir / "checkpoints"
            started = checkpoints.is_dir() and any(checkpoints.iterdir())
            if not started and all(p.name in START_FILES for p in run_dir.iterdir()):
                shutil.rmtree(run_dir, ignore_errors=True)
        raise


def git_sha() -> str | None:
    """The git commit of the imgclf source tree, when it is a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def write_run_files(run_dir: Path, cfg: RunConfig, device: torch.device, dist: DistInfo) -> None:
    """``config.yaml`` (resolved) and ``env.json`` (versions, git sha, device)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", to_yaml(cfg))
    env = {
        "versions": library_versions(),
        "git_sha": git_sha(),
        "device": str(device),
        "cuda": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "world_size": dist.world_size,
        "platform": platform.platform(),
        "started": datetime.now().isoformat(timespec="seconds"),
    }
    atomic_write_text(run_dir / "env.json", json.dumps(env, indent=2) + "\n")
