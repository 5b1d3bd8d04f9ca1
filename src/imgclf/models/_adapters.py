"""Torchvision classifiers behind the imgclf model contract (``tv/NAME``).

Each supported family gets a recipe: how to run its feature extractor, how to pool to an embedding and which
attribute holds its classifier (a ``Linear`` or a ``Sequential`` ending in one). The torchvision model sits
unchanged in ``adapter.model``, so its state-dict keys are torchvision's keys under ``model.``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from imgclf.config import IMAGENET_MEAN, IMAGENET_STD, DataConfig
from imgclf.errors import ModelError

Tensor = torch.Tensor


def _run(*names: str) -> Callable[[nn.Module, Tensor], Tensor]:
    """A feature extractor that applies the named children of the torchvision model in order."""

    def features(net: nn.Module, x: Tensor) -> Tensor:
        if getattr(net, "transform_input", False):  # GoogLeNet / Inception v3 with ImageNet weights
            x = net._transform_input(x)
        for name in names:
            x = getattr(net, name)(x)
        return x

    return features


def _vit_tokens(net: nn.Module, x: Tensor) -> Tensor:
    x = net._process_input(x)  # (B, N, D)
    cls = net.class_token.expand(x.shape[0], -1, -1)  # (B, 1, D)
    return net.encoder(torch.cat([cls, x], dim=1))  # (B, 1 + N, D)


def _maxvit_features(net: nn.Module, x: Tensor) -> Tensor:
    x = net.stem(x)
    for block in net.blocks:
        x = block(x)
    return x  # (B, C, h, w)


def _avgpool_flat(net: nn.Module, x: Tensor) -> Tensor:
    return torch.flatten(net.avgpool(x), 1)  # (B, C)


def _mean_hw(net: nn.Module, x: Tensor) -> Tensor:
    return x.mean(dim=(2, 3))  # (B, C)


def _adaptive_flat(net: nn.Module, x: Tensor) -> Tensor:
    return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)  # (B, C)


def _avgpool_keep(net: nn.Module, x: Tensor) -> Tensor:
    return net.avgpool(x)  # (B, C, 1, 1); ConvNeXt's classifier normalises and flattens


def _identity(net: nn.Module, x: Tensor) -> Tensor:
    return x


def _densenet_features(net: nn.Module, x: Tensor) -> Tensor:
    return F.relu(net.features(x))  # (B, C, h, w)


def _class_token(net: nn.Module, x: Tensor) -> Tensor:
    return x[:, 0]  # (B, D)


def _last_encoder_layer(net: nn.Module) -> nn.Module:
    return net.encoder.layers[-1]


@dataclass(frozen=True)
class Recipe:
    """How to split one torchvision family into features / pooling / classifier."""

    features: Callable[[nn.Module, Tensor], Tensor]
    pool: Callable[[nn.Module, Tensor], Tensor]
    head: str  # attribute holding the classifier: a Linear, or a Sequential whose last module is the Linear
    num_prefix_tokens: int | None = None  # token models only: class tokens before the patch tokens
    token_block: Callable[[nn.Module], nn.Module] | None = None  # token models: the block CAM methods read


_RESNET = Recipe(_run("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"), _avgpool_flat, "fc")
_GOOGLENET = (
    "conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3", "inception4a",
    "inception4b", "inception4c", "inception4d", "inception4e", "maxpool4", "inception5a", "inception5b",
)  # fmt: skip
_INCEPTION = (
    "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3", "maxpool2",
    "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
    "Mixed_7a", "Mixed_7b", "Mixed_7c",
)  # fmt: skip

# torchvision class name -> recipe; names keep this module importable without touching torchvision.models.
RECIPES: dict[str, Recipe] = {
    "ResNet": _RESNET,
    "RegNet": Recipe(_run("stem", "trunk_output"), _avgpool_flat, "fc"),
    "GoogLeNet": Recipe(_run(*_GOOGLENET), _avgpool_flat, "fc"),
    "Inception3": Recipe(_run(*_INCEPTION), _avgpool_flat, "fc"),
    "ShuffleNetV2": Recipe(_run("conv1", "maxpool", "stage2", "stage3", "stage4", "conv5"), _mean_hw, "fc"),
    "MobileNetV2": Recipe(_run("features"), _adaptive_flat, "classifier"),
    "MobileNetV3": Recipe(_run("features"), _avgpool_flat, "classifier"),
    "EfficientNet": Recipe(_run("features"), _avgpool_flat, "classifier"),
    "MNASNet": Recipe(_run("layers"), _mean_hw, "classifier"),
    "DenseNet": Recipe(_densenet_features, _adaptive_flat, "classifier"),
    "ConvNeXt": Recipe(_run("features"), _avgpool_keep, "classifier"),
    "VGG": Recipe(_run("features"), _avgpool_flat, "classifier"),
    "AlexNet": Recipe(_run("features"), _avgpool_flat, "classifier"),
    "SwinTransformer": Recipe(_run("features", "norm", "permute"), _avgpool_flat, "head"),
    "MaxVit": Recipe(_maxvit_features, _identity, "classifier"),
    "VisionTransformer": Recipe(_vit_tokens, _class_token, "heads", 1, _last_encoder_layer),
}
# Name prefixes of torchvision.models.list_models() entries that map to a recipe (squeezenet has no linear head).
SUPPORTED_PREFIXES = (
    "resnet", "resnext", "wide_resnet", "regnet", "googlenet", "inception", "shufflenet", "mobilenet", "efficientnet",
    "mnasnet", "densenet", "convnext", "vgg", "alexnet", "swin", "maxvit", "vit_",
)  # fmt: skip


class TorchvisionAdapter(nn.Module):
    """A torchvision classifier with timm's contract: forward_features / forward_head / reset_classifier.

    ``forward_head`` pools, runs the classifier's hidden layers (if any) to get the ``(B, num_features)`` embedding,
    applies ``drop_rate`` dropout and the final ``Linear``.

    >>> import torchvision  # doctest: +SKIP
    >>> m = TorchvisionAdapter(torchvision.models.resnet18(), "resnet18", num_classes=1000)  # doctest: +SKIP
    >>> m.forward_head(m.forward_features(x), pre_logits=True).shape  # doctest: +SKIP
    torch.Size([2, 512])
    """

    def __init__(self, model: nn.Module, arch: str, num_classes: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        recipe = RECIPES.get(type(model).__name__)
        if recipe is None:
            raise ModelError(
                f"torchvision model tv/{arch} ({type(model).__name__}) has no adapter recipe; supported families: "
                f"{', '.join(sorted(RECIPES))}. Use a timm architecture instead (imgclf models --filter ...)."
            )
        self.model = model
        self.arch = arch
        self.family = type(model).__name__  # the recipe is looked up by name so the module stays picklable
        self.head_drop = nn.Dropout(drop_rate)
        self.num_features = self._linear().in_features
        self.num_classes = self._linear().out_features
        self.head_bias = self._linear().bias is not None  # MaxViT's classifier has none; resets keep that
        if num_classes != self.num_classes:
            self.reset_classifier(num_classes)
        if recipe.num_prefix_tokens is not None:
            self.num_prefix_tokens = recipe.num_prefix_tokens
        cfg = torchvision_data_config(arch)
        size = getattr(model, "image_size", None)  # torchvision ViTs are built for one input size
        self.imgclf_data_config = cfg.with_size(size) if isinstance(size, int) and size != cfg.input_size else cfg

    @property
    def recipe(self) -> Recipe:
        return RECIPES[self.family]

    def _linear(self) -> nn.Linear:
        head = getattr(self.model, self.recipe.head)
        last = head[-1] if isinstance(head, nn.Sequential) else head
        if not isinstance(last, nn.Linear):
            raise ModelError(f"tv/{self.arch}: expected a Linear classifier at '{self.recipe.head}', got {last}")
        return last

    def forward_features(self, x: Tensor) -> Tensor:
        return self.recipe.features(self.model, x)  # (B, C, h, w) or tokens (B, N, D)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.recipe.pool(self.model, x)
        head = getattr(self.model, self.recipe.head)
        if isinstance(head, nn.Sequential):
            x = head[:-1](x)  # hidden layers of an MLP classifier
        if pre_logits:
            return x  # (B, num_features)
        return self.get_classifier()(self.head_drop(x))  # (B, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        head = getattr(self.model, self.recipe.head)
        return head[-1] if isinstance(head, nn.Sequential) else head

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final Linear by a fresh one with ``num_classes`` outputs (0: identity)."""
        ref = next(self.model.parameters())
        new: nn.Module = (
            nn.Linear(self.num_features, num_classes, bias=self.head_bias) if num_classes > 0 else nn.Identity()
        )
        new.to(device=ref.device, dtype=ref.dtype)
        head = getattr(self.model, self.recipe.head)
        if isinstance(head, nn.Sequential):
            head[len(head) - 1] = new
        else:
            setattr(self.model, self.recipe.head, new)
        self.num_classes = num_classes

    def token_block(self) -> nn.Module | None:
        """The last transformer block for token models (ViT), else None."""
        return self.recipe.token_block(self.model) if self.recipe.token_block else None


def torchvision_data_config(arch: str) -> DataConfig:
    """Eval preprocessing of torchvision's DEFAULT weights for ``arch`` (ImageNet 224/256 bilinear if none)."""
    import torchvision.models as tvm

    try:
        weights = tvm.get_model_weights(arch).DEFAULT
    except (ValueError, KeyError, AttributeError):
        return DataConfig(224, 256, "bilinear", IMAGENET_MEAN, IMAGENET_STD)
    kw = getattr(weights.transforms, "keywords", {})
    crop = _first(kw.get("crop_size", 224))
    resize = max(crop, _first(kw.get("resize_size", 256)))
    interp = getattr(kw.get("interpolation"), "value", "bilinear")
    interp = interp if interp in ("nearest", "bilinear", "bicubic") else "bilinear"
    mean = tuple(kw.get("mean", IMAGENET_MEAN))
    std = tuple(kw.get("std", IMAGENET_STD))
    return DataConfig(crop, resize, interp, mean, std)


def _first(v: int | list[int] | tuple[int, ...]) -> int:
    return int(v[0]) if isinstance(v, list | tuple) else int(v)


def build_torchvision(arch: str, num_classes: int, *, pretrained: bool, drop_rate: float) -> TorchvisionAdapter:
    """Build ``tv/arch`` (DEFAULT weights when ``pretrained``; the caller turns loader failures into ModelError)."""
    import torchvision.models as tvm

    kwargs: dict = {}
    if arch in ("googlenet", "inception_v3"):
        kwargs["aux_logits"] = False  # auxiliary heads return tuples in train mode; the contract wants logits
        if not pretrained:
            kwargs["init_weights"] = True
    if pretrained:
        net = tvm.get_model(arch, weights="DEFAULT", **kwargs)  # 1000 classes; the adapter resets the head
    else:
        net = tvm.get_model(arch, weights=None, num_classes=num_classes, **kwargs)
    return TorchvisionAdapter(net, arch, num_classes=num_classes, drop_rate=drop_rate)


def torchvision_names() -> list[str]:
    """Supported torchvision classifier names (without the ``tv/`` prefix)."""
    import torchvision.models as tvm

    return [n for n in tvm.list_models(module=tvm) if n.startswith(SUPPORTED_PREFIXES)]
