"""Self-supervised pretraining (SimCLR, BYOL, DINO from lightly) in imgclf's own training loop; the result is an
embedding bundle that ``imgclf embed`` reads and ``imgclf train --weights RUN_DIR`` starts from.

>>> # from imgclf.pretrain import PretrainConfig, pretrain
>>> # pretrain(PretrainConfig("photos/", method="simclr", model="resnet20_cifar", img_size=32), "runs/ssl")
"""

from imgclf.pretrain._callbacks import COLLAPSE_RATIO, CollapseCheck, MethodSteps, embedding_std, knn_accuracy
from imgclf.pretrain._config import METHODS, PretrainConfig
from imgclf.pretrain._methods import BYOL, DINO, SimCLR, build_method, momentum_at
from imgclf.pretrain._run import PretrainResult, check_config, load_pretrain_config, pretrain
from imgclf.pretrain._views import SeededViews, local_crop_size, view_transform
from imgclf.utils import publish

__all__ = [
    "BYOL",
    "COLLAPSE_RATIO",
    "DINO",
    "METHODS",
    "CollapseCheck",
    "MethodSteps",
    "PretrainConfig",
    "PretrainResult",
    "SeededViews",
    "SimCLR",
    "build_method",
    "check_config",
    "embedding_std",
    "knn_accuracy",
    "local_crop_size",
    "load_pretrain_config",
    "momentum_at",
    "pretrain",
    "view_transform",
]

publish(__name__, globals(), __all__)
