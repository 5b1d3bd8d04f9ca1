"""Elastic restarts under ``torchrun --max-restarts N``: a restarted worker group continues from its checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist

from imgclf.config import RunConfig
from imgclf.engine._device import init_distributed, local_device, resolve_device
from imgclf.errors import ConfigError, TrainingError

RESTART_COUNT_ENV = "TORCHELASTIC_RESTART_COUNT"
MAX_RESTARTS_ENV = "TORCHELASTIC_MAX_RESTARTS"
SHARED_STORE_ENV = "TORCHELASTIC_USE_AGENT_STORE"


def last_checkpoint(out: str | Path, name: str) -> Path:
    """Where the run ``OUT/NAME`` keeps its resumable state (``Checkpointer.last_path``)."""
    return Path(out) / name / "checkpoints" / "last.safetensors"


def elastic_resume(cfg: RunConfig | None, resume: Path | None) -> Path | None:
    """The run directory a restarted ``torchrun`` worker group resumes from; otherwise ``resume`` unchanged.

    torchrun sets ``TORCHELASTIC_RESTART_COUNT`` in every worker: 0 in the first group, ``n`` after the n-th
    restart on that node. A node whose own workers were healthy keeps its count when it restarts for a failed
    peer, so the ranks agree on the largest count (one all-reduce; the process group joined here, with
    ``train.dist_timeout``, is the one training then uses). In a restarted group every rank resumes from
    ``OUT/NAME/checkpoints/last.safetensors`` when rank 0 sees it, and starts over when none was written yet.

    Does nothing outside torchrun, with ``--max-restarts 0``, or when ``resume`` is given. With restarts allowed
    the run name must be fixed (``--name``): a generated name holds the start time, so a restarted group would
    not find the run. Every node must see ``OUT`` (shared storage), as checkpoints are written by rank 0 only.
    torchrun must run with ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1``: its shared store outlives a worker group, so
    a restarted rank can read a dead peer's address from it and the restart fails (seen with gloo) — ConfigError.

    >>> # in train_run: resume = elastic_resume(cfg, resume)   # None on a first start
    """
    if resume is not None or cfg is None or RESTART_COUNT_ENV not in os.environ:
        return resume
    if int(os.environ.get(MAX_RESTARTS_ENV, "0")) <= 0:
        return None
    if not cfg.train.name:
        raise ConfigError("torchrun --max-restarts needs a fixed run name so restarted workers find the run's "
                          "checkpoints: pass --name NAME (or --set train.name=NAME)")  # fmt: skip
    if os.environ.get(SHARED_STORE_ENV) == "True":
        raise ConfigError("torchrun --max-restarts needs TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 in torchrun's "
                          "environment: its shared store keeps the dead workers' addresses, so a restart would fail "
                          "to connect; run `TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 torchrun ...`")  # fmt: skip
    checkpoint = last_checkpoint(cfg.train.out, cfg.train.name)
    device = resolve_device(cfg.train.device)
    info = init_distributed(device, cfg.train.dist_timeout)
    seen = checkpoint.is_file()
    generation, main_seen = int(os.environ[RESTART_COUNT_ENV]), seen and info.is_main
    if info.enabled:
        flags = torch.tensor([generation, int(main_seen)], device=local_device(device, info))  # (2,)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        generation, main_seen = int(flags[0]), bool(flags[1])
    if generation == 0 or not main_seen:
        return None
    if not seen:
        raise TrainingError(f"rank {info.rank} cannot see {checkpoint}, which rank 0 resumes from after a torchrun "
                            "restart: put --out on storage every node shares (NFS, a Kubernetes volume)")  # fmt: skip
    return checkpoint.parents[1]
