"""Device, precision and distributed set-up."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from imgclf.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else CPU; ``cuda:1`` etc. are checked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name!r} but CUDA is not available here; use --set train.device=cpu")
    return device


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for ``train.amp``: ``auto`` = bf16/fp16 on CUDA, off on CPU; ``bf16`` on CPU needs support."""
    if amp == "off":
        return None
    if device.type == "cuda":
        if amp == "fp16":
            return torch.float16
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp == "auto":
        return None
    if amp == "fp16":
        raise ConfigError("train.amp=fp16 needs a CUDA device; on CPU use bf16 or off")
    return torch.bfloat16


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in a ``torchrun`` job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device, timeout: float | None = None) -> DistInfo:
    """Join the process group started by ``torchrun`` (gloo on CPU, nccl on CUDA); no-op otherwise.

    ``timeout`` (seconds, ``train.dist_timeout``) bounds how long a collective waits for a lost peer before it
    fails and torchrun may restart the workers; None keeps torch's default. A group already joined is kept.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(info.local_rank)
        backend = "nccl" if device.type == "cuda" else "gloo"
        if timeout is None:
            dist.init_process_group(backend=backend)
        else:
            dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout))
    return info


def local_device(device: torch.device, info: DistInfo) -> torch.device:
    """The device of this rank: ``cuda:LOCAL_RANK`` under torchrun on GPUs."""
    if device.type == "cuda" and info.enabled:
        return torch.device("cuda", info.local_rank)
    return device


def barrier(info: DistInfo) -> None:
    """Wait for every rank (a no-op outside a distributed run)."""
    if info.enabled and dist.is_initialized():
        dist.barrier()


def cleanup_distributed(info: DistInfo) -> None:
    """Tear down the process group this run started (a no-op outside a distributed run)."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


@torch.no_grad()
def sync_buffers(model: torch.nn.Module, info: DistInfo) -> None:
    """Give every rank rank 0's buffers (BatchNorm running statistics drift apart under DDP)."""
    if info.enabled and dist.is_initialized():
        for buf in model.buffers():
            dist.broadcast(buf, src=0)

