"""Hardware facts and ONNX Runtime sessions shared by the engines, the parity check and quantization."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import torch

from imgclf.utils import optional_import


def physical_cores() -> int:
    """Physical CPU cores this process may run on (hyper-threads not counted); at least 1.

    Reads ``/proc/cpuinfo`` (Linux) for distinct (package, core) pairs and caps by the CPU affinity mask, so a
    container limited to 2 CPUs gets 2. Elsewhere: ``os.cpu_count()``.

    >>> physical_cores() >= 1
    True
    """
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    cores: set[tuple[str, str]] = set()
    with contextlib.suppress(OSError):
        package = core = ""
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "physical id":
                package = value.strip()
            elif key == "core id":
                core = value.strip()
            elif not line.strip() and core:
                cores.add((package, core))
                package = core = ""
        if core:
            cores.add((package, core))
    return max(1, min(allowed, len(cores)) if cores else allowed)


_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # glibc mallopt parameter ids


def tune_malloc() -> bool:
    """Make glibc keep freed memory for reuse, so PyTorch's large activation buffers stop being page-faulted in anew
    on every forward pass; True when applied (glibc only).

    PyTorch on CPU has no caching allocator: a ResNet-18 forward at batch 32, 224 px frees and re-maps hundreds of
    MB, which costs ~160k page faults per call and can make batched eager inference several times slower on a VM.
    This raises glibc's mmap and trim thresholds (like ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``).
    It is process-wide and the process keeps its peak memory, so it is opt-in; onnxruntime has its own arena.

    >>> tune_malloc()  # doctest: +SKIP
    True
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        return False
    settings = ((_M_MMAP_THRESHOLD, 1 << 30), (_M_TRIM_THRESHOLD, 2**31 - 1), (_M_TOP_PAD, 1 << 26))
    return all(mallopt(param, value) == 1 for param, value in settings)


def ort_session(model: str | os.PathLike | bytes, device: str = "cpu", threads: int | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` with all graph optimisations and one intra-op thread per physical core.

    ``model`` is a path (check it with :func:`check_external_data` first) or serialized bytes. ``device="cuda"``
    uses the CUDA provider when onnxruntime has it, else the CPU.

    >>> sess = ort_session("model.onnx")  # doctest: +SKIP
    """
    ort = optional_import("onnxruntime", "export")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads or physical_cores()
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3  # errors only: ORT's warnings about unused initializers are noise to users
    providers = ["CPUExecutionProvider"]
    if str(device).startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, sess_options=opts, providers=providers)


def as_float_tensor(images: Any) -> torch.Tensor:
    """``images`` (a tensor or numpy array ``(B, 3, H, W)``) as a float32 CPU tensor."""
    x = images if isinstance(images, torch.Tensor) else torch.from_numpy(images)
    return x.detach().to(device="cpu", dtype=torch.float32)
