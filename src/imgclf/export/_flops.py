"""Counting floating-point operations of one forward pass."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from imgclf.errors import ConfigError
from imgclf.utils import eval_mode, model_device


def count_flops(model: nn.Module, input_size: int, *, batch_size: int = 1) -> int:
    """FLOPs of one eval-mode forward pass on ``(batch_size, 3, input_size, input_size)`` images.

    Counted by ``torch.utils.flop_counter.FlopCounterMode`` (convolutions, matmuls, attention; a multiply-add
    counts as 2 FLOPs; element-wise ops are not counted). Divide by 1e9 for GFLOPs.

    >>> count_flops(nn.Conv2d(3, 8, 3, padding=1), 32)
    442368
    """
    if input_size < 1 or batch_size < 1:
        raise ConfigError(f"input_size and batch_size must be positive, got {input_size} and {batch_size}.")
    ref = next(model.parameters(), None)
    dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.float32
    x = torch.zeros(batch_size, 3, input_size, input_size, device=model_device(model), dtype=dtype)  # (B, 3, S, S)
    counter = FlopCounterMode(display=False)
    with eval_mode(model), torch.no_grad(), counter:
        model(x)
    return int(counter.get_total_flops())
