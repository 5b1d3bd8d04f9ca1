"""The three methods as one module each: backbone + lightly heads + lightly loss; ``forward(views) -> loss``.

Each module holds everything its method learns or tracks (student, momentum teacher, DINO's centre) as
parameters and buffers, so a checkpoint of its ``state_dict`` resumes it exactly. ``views`` are stacked:
``(B, V, 3, H, W)``, two views per image (DINO with local crops: flattened, see :meth:`DINO.crops`).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from imgclf.pretrain._views import local_crop_size
from imgclf.utils import optional_import


def _lightly(module: str) -> object:
    return optional_import(f"lightly.{module}", "fewlabels")


def _pair(views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return views[:, 0], views[:, 1]  # (B, 3, H, W) each


def _frozen_copy(module: nn.Module) -> nn.Module:
    teacher = copy.deepcopy(module)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


class SimCLR(nn.Module):
    """SimCLR: a projection head (lightly ``SimCLRProjectionHead``) and NT-Xent (``NTXentLoss``) over two views."""

    def __init__(self, backbone: nn.Module, num_features: int, *, out_dim: int = 128, temperature: float = 0.5):
        super().__init__()
        heads, loss = _lightly("models.modules.heads"), _lightly("loss")
        self.backbone = backbone
        self.projection = heads.SimCLRProjectionHead(num_features, num_features, out_dim)
        self.criterion = loss.NTXentLoss(temperature=temperature)

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        a, b = _pair(views)
        z = self.projection(self.backbone(torch.cat([a, b])))  # (2B, out_dim)
        za, zb = z.chunk(2)
        return self.criterion(za, zb)

    def after_step(self, progress: float) -> None: ...


class _MomentumTeacher(nn.Module):
    """BYOL and DINO: after each step the teacher's backbone and projection move towards the student's."""

    @torch.no_grad()
    def after_step(self, progress: float) -> None:
        m = momentum_at(self.base_momentum, progress)
        update = _lightly("models.utils").update_momentum
        update(self.backbone, self.teacher_backbone, m)
        update(self.projection, self.teacher_projection, m)


class BYOL(_MomentumTeacher):
    """BYOL: online backbone + projection + prediction heads, a momentum teacher, negative cosine similarity
    (lightly ``BYOLProjectionHead`` / ``BYOLPredictionHead`` / ``NegativeCosineSimilarity``), symmetrised."""

    def __init__(self, backbone: nn.Module, num_features: int, *, out_dim: int = 128, momentum: float = 0.99):
        super().__init__()
        heads, loss = _lightly("models.modules.heads"), _lightly("loss")
        hidden = max(256, 4 * out_dim)
        self.backbone = backbone
        self.projection = heads.BYOLProjectionHead(num_features, hidden, out_dim)
        self.prediction = heads.BYOLPredictionHead(out_dim, hidden, out_dim)
        self.teacher_backbone = _frozen_copy(backbone)
        self.teacher_projection = _frozen_copy(self.projection)
        self.criterion = loss.NegativeCosineSimilarity()
        self.base_momentum = momentum

    def _student(self, x: torch.Tensor) -> torch.Tensor:
        return self.prediction(self.projection(self.backbone(x)))  # (B, out_dim)

    @torch.no_grad()
    def _teacher(self, x: torch.Tensor) -> torch.Tensor:
        return self.teacher_projection(self.teacher_backbone(x)).detach()  # (B, out_dim)

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        a, b = _pair(views)
        pa, pb = self._student(a), self._student(b)
        ta, tb = self._teacher(a), self._teacher(b)
        return 0.5 * (self.criterion(pa, tb) + self.criterion(pb, ta))


class DINO(_MomentumTeacher):
    """DINO: student and momentum-teacher ``DINOProjectionHead`` and ``DINOLoss`` (its centre is a buffer of this
    module, so checkpoints carry it). With ``local_views`` (multi-crop) the student also sees that many small crops
    of each image (:func:`imgclf.pretrain.local_crop_size` of the ``global_size``-px views) and learns to match,
    from each, the teacher's view of the global crops."""

    def __init__(self, backbone: nn.Module, num_features: int, *, out_dim: int = 128, momentum: float = 0.99,
                 epochs: int = 10, local_views: int = 0, global_size: int = 0):  # fmt: skip
        super().__init__()
        self.local_views, self.global_size = local_views, global_size
        heads, loss = _lightly("models.modules.heads"), _lightly("loss")
        hidden = max(256, 4 * num_features)
        self.backbone = backbone
        has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in backbone.modules())
        # DINO's head uses BatchNorm with CNN backbones and none with transformers (as the paper does)
        args = (num_features, hidden, min(256, hidden), out_dim)
        self.projection = heads.DINOProjectionHead(*args, batch_norm=has_bn)
        self.teacher_backbone = _frozen_copy(backbone)
        # a twin loaded from the student, not a deepcopy: the weight-normed last layer cannot be deep-copied
        self.teacher_projection = heads.DINOProjectionHead(*args, batch_norm=has_bn)
        self.teacher_projection.load_state_dict(self.projection.state_dict())
        for p in self.teacher_projection.parameters():
            p.requires_grad_(False)
        warmup = max(1, min(30, epochs // 3))
        self.criterion = loss.DINOLoss(output_dim=out_dim, warmup_teacher_temp_epochs=warmup)
        self.base_momentum = momentum
        self.epoch = 0  # set by the training callback each epoch: DINOLoss warms its teacher temperature by epoch

    def crops(self, views: torch.Tensor) -> list[torch.Tensor]:
        """The two global crops, then the local ones, each ``(B, 3, S, S)``, from a batch of stacked views
        ``(B, 2, 3, S, S)`` or of flattened multi-crop views ``(B, L)`` (:class:`imgclf.pretrain.SeededViews`)."""
        if views.ndim == 5:
            return [views[:, i] for i in range(views.shape[1])]
        b, g, s, n = views.shape[0], self.global_size, local_crop_size(self.global_size), self.local_views
        if views.shape[1] != 3 * (2 * g * g + n * s * s):
            raise ValueError(f"DINO expected 2 global {g}-px and {n} local {s}-px crops per image, got "
                             f"{views.shape[1]} values")  # fmt: skip
        glob = views[:, : 6 * g * g].reshape(b, 2, 3, g, g)
        loc = views[:, 6 * g * g :].reshape(b, n, 3, s, s)
        return [glob[:, 0], glob[:, 1], *(loc[:, i] for i in range(n))]

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        crops = self.crops(views)
        student = [self.projection(self.backbone(v)) for v in crops]  # V x (B, out_dim): global, then local
        with torch.no_grad():
            teacher = [self.teacher_projection(self.teacher_backbone(v)) for v in crops[:2]]  # global crops only
        return self.criterion(teacher, student, epoch=self.epoch)


def momentum_at(base: float, progress: float) -> float:
    """The teacher's EMA momentum, cosine from ``base`` at the start to 1 at the end (BYOL's schedule).

    >>> momentum_at(0.99, 0.0), momentum_at(0.99, 1.0)
    (0.99, 1.0)
    """
    progress = min(max(progress, 0.0), 1.0)
    return 1 - (1 - base) * (math.cos(math.pi * progress) + 1) / 2


def build_method(method: str, backbone: nn.Module, num_features: int, *, out_dim: int, temperature: float,
                 momentum: float, epochs: int, local_views: int = 0, global_size: int = 0) -> nn.Module:  # fmt: skip
    """The method's training module around ``backbone`` (a ``num_classes=0`` model: images -> pooled features);
    ``local_views`` / ``global_size``: DINO's multi-crop (see :class:`DINO`)."""
    if method == "simclr":
        return SimCLR(backbone, num_features, out_dim=out_dim, temperature=temperature)
    if method == "byol":
        return BYOL(backbone, num_features, out_dim=out_dim, momentum=momentum)
    return DINO(backbone, num_features, out_dim=out_dim, momentum=momentum, epochs=epochs, local_views=local_views,
                global_size=global_size)  # fmt: skip
