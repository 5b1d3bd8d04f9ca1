from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so a run repeats on the same machine."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
