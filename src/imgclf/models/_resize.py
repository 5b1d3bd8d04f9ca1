from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


def resize_to_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor]) -> nn.Module:
    """Shrink (or grow) Conv2d / BatchNorm2d / Linear layers to the shapes in ``state``, in place.

    This rebuilds a channel-pruned network from its architecture name: create the full model, resize its layers
    to the saved weights' shapes, then ``load_state_dict(state)``.

    >>> m = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))
    >>> small = {"0.weight": torch.zeros(5, 3, 3, 3), "0.bias": torch.zeros(5), "1.weight": torch.zeros(5)}
    >>> resize_to_state_dict(m, small)[0].out_channels
    5
    """
    for name, module in list(model.named_modules()):
        weight = state.get(f"{name}.weight" if name else "weight")
        if weight is None or weight.shape == getattr(module, "weight", torch.empty(0)).shape:
            continue
        if isinstance(module, nn.Conv2d):
            groups = module.groups if module.groups == 1 else weight.shape[0]  # depthwise convs keep in == out
            new: nn.Module = nn.Conv2d(weight.shape[1] * groups, weight.shape[0], module.kernel_size, module.stride,
                                       module.padding, module.dilation, groups, module.bias is not None,
                                       module.padding_mode)  # fmt: skip
        elif isinstance(module, nn.BatchNorm2d):
            new = nn.BatchNorm2d(weight.shape[0], module.eps, module.momentum, module.affine,
                                 module.track_running_stats)  # fmt: skip
        elif isinstance(module, nn.Linear):
            new = nn.Linear(weight.shape[1], weight.shape[0], module.bias is not None)
        else:
            continue
        parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
        setattr(parent, name.rpartition(".")[2], new)
    return model
