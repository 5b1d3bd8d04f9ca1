"""Models: one registry, one factory over builtins, timm and torchvision, one contract for all of them.

Every model from :func:`create_model` has ``forward(x) -> (B, num_classes)``, ``forward_features(x)`` (unpooled),
``forward_head(feats, pre_logits=False)``, ``reset_classifier(n)``, ``get_classifier()``, ``num_features`` and
``num_classes``; :func:`model_data_config` gives its preprocessing and :func:`target_layer` the layer that
attribution methods read. Builtins are registered on import.

>>> model = create_model("resnet20_cifar", num_classes=10)
>>> model_data_config(model).input_size
32
"""

from imgclf.models import _classics, _clip, _fewshot_nets, _speednet, _tiny  # noqa: F401  (importing registers the builtins)
from imgclf.models._adapters import TorchvisionAdapter
from imgclf.models._classical import ClassicalNet, is_classical
from imgclf.models._ensemble import (
    EnsembleNet,
    HedgedNet,
    ensemble_head_stats,
    mean_prob_logits,
    mutual_information,
)
from imgclf.models._factory import (
    check_input_size,
    create_model,
    describe_model,
    list_models,
    patch_size,
    size_args,
)
from imgclf.models._inspect import count_parameters, freeze_backbone, model_data_config, split_parameters
from imgclf.models._norm import batchnorm_to_groupnorm
from imgclf.models._registry import ModelEntry, register_model
from imgclf.models._resize import resize_to_state_dict
from imgclf.models._target import TargetLayer, target_layer
from imgclf.models._weights import LoadReport, load_weights
from imgclf.utils import publish

__all__ = [
    "resize_to_state_dict",
    "ClassicalNet",
    "is_classical",
    "EnsembleNet",
    "HedgedNet",
    "mean_prob_logits",
    "mutual_information",
    "ensemble_head_stats",
    "LoadReport",
    "ModelEntry",
    "TargetLayer",
    "TorchvisionAdapter",
    "batchnorm_to_groupnorm",
    "check_input_size",
    "count_parameters",
    "create_model",
    "describe_model",
    "freeze_backbone",
    "list_models",
    "load_weights",
    "model_data_config",
    "patch_size",
    "size_args",
    "register_model",
    "split_parameters",
    "target_layer",
]

publish(__name__, globals(), __all__)
