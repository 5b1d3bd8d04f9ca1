"""Swap BatchNorm for GroupNorm: the layout differentially private training needs, rebuilt identically on load."""

from __future__ import annotations

import math

from torch import nn

_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def batchnorm_to_groupnorm(model: nn.Module) -> list[str]:
    """Replace every BatchNorm layer of ``model`` in place with ``GroupNorm(gcd(32, C), C)``; return their names.

    The same rule as Opacus' ``ModuleValidator.fix`` (per-sample gradients need layers that do not mix the images
    of a batch), so a bundle trained with DP-SGD is rebuilt by name and this call before its weights load.

    >>> from imgclf.models import create_model
    >>> m = create_model("test_cnn", 3); batchnorm_to_groupnorm(m)
    ['features.1', 'features.4']
    """
    replaced = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, _BATCHNORMS):
                c = child.num_features
                setattr(module, child_name, nn.GroupNorm(math.gcd(32, c), c, affine=child.affine))
                replaced.append(f"{name}.{child_name}" if name else child_name)
    return replaced
