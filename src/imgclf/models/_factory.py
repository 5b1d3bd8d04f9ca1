"""One factory over three sources: builtins first, then timm, then torchvision (``tv/NAME``).

``timm/NAME`` forces timm where a builtin shadows a timm name (``test_vit``). Unknown names raise a
:class:`~imgclf.errors.ModelError` listing close matches.
"""

from __future__ import annotations

import fnmatch
import inspect
import math
import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from imgclf.errors import ModelError
from imgclf.models._adapters import build_torchvision, torchvision_data_config, torchvision_names
from imgclf.models._classical import SPECS as CLASSICAL
from imgclf.models._classical import build_classical, classical_names
from imgclf.models._inspect import model_data_config
from imgclf.models._registry import builtin_entry, builtin_names
from imgclf.models._weights import PRETRAINED, load_weights_file, parse_weights, pretrained_error
from imgclf.utils import closest

TV_PREFIX = "tv/"
TIMM_PREFIX = "timm/"


@dataclass(frozen=True)
class Resolved:
    """Where a model name comes from: ``source`` in builtin / timm / torchvision, and the name there."""

    source: str
    arch: str


def _timm():
    import timm

    return timm


def resolve(name: str) -> Resolved:
    """Resolve ``name`` to its source, or raise ModelError with close matches."""
    if not isinstance(name, str) or not name:
        raise ModelError(f"model name must be a non-empty string, got {name!r}. See `imgclf models --filter`.")
    if name.startswith(TV_PREFIX):
        arch = name[len(TV_PREFIX) :]
        if arch in torchvision_names():
            return Resolved("torchvision", arch)
    elif name.startswith(TIMM_PREFIX):
        arch = name[len(TIMM_PREFIX) :]
        if _timm().is_model(arch):
            return Resolved("timm", arch)
    elif builtin_entry(name) is not None:
        return Resolved("builtin", name)
    elif name in CLASSICAL:
        return Resolved("classical", name)
    elif _timm().is_model(name):
        return Resolved("timm", name)
    hint = closest(name, list_models())
    raise ModelError(
        f"unknown model {name!r}.{hint} List names with `imgclf models --filter PATTERN` "
        "(builtins, every timm architecture, torchvision classifiers as tv/NAME)."
    )


def _check_args(num_classes: int, drop_rate: float) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2 and num_classes != 0:
        raise ModelError(f"num_classes={num_classes!r} must be an integer >= 2 (a classifier needs two classes), "
                         "or 0 for the backbone alone (an embedding model)")
    if not 0.0 <= drop_rate < 1.0:
        raise ModelError(f"drop_rate={drop_rate!r} must be in [0, 1)")


def _build_timm(name: str, arch: str, num_classes: int, pretrained: bool, drop_rate: float,
                img_size: int | None) -> nn.Module:  # fmt: skip
    kwargs = {"num_classes": num_classes, "pretrained": pretrained}
    if drop_rate:
        kwargs["drop_rate"] = drop_rate
    if img_size is not None:
        kwargs["img_size"] = img_size
    try:
        model = _timm().create_model(arch, **kwargs)
    except TypeError as exc:  # an architecture that does not take one of the arguments
        if img_size is not None and "img_size" in str(exc):  # a CNN: any input size
            return _build_timm(name, arch, num_classes, pretrained, drop_rate, None)
        raise ModelError(f"timm model {name} cannot be built with {kwargs} ({exc})") from exc
    except Exception as exc:  # timm's loaders raise many types (hub, HTTP, file, RuntimeError) when offline
        if pretrained:
            raise pretrained_error(name, exc) from exc
        if img_size is not None:
            raise ModelError(f"timm model {name} cannot be built for {img_size}-pixel images ({exc}); choose an "
                             "--img-size its patch and window sizes divide, or a CNN") from exc  # fmt: skip
        raise
    if img_size is not None:
        check_input_size(model, name, img_size)  # a patch larger than the image only fails in forward
    return model


def patch_size(model: nn.Module) -> int | None:
    """The side in pixels that an input must be a multiple of for ``model``'s patch embedding to cover it whole
    (16 for ``vit_*_patch16_*``); None for a model without patches, or one that pads its input to whole patches.

    >>> patch_size(create_model("vit_tiny_patch16_224", 3))  # doctest: +SKIP
    16
    """
    embed = getattr(model, "patch_embed", None)
    patch = getattr(embed, "patch_size", None)
    if patch is None or getattr(embed, "dynamic_img_pad", False):
        return None
    sides = [int(p) for p in (patch if isinstance(patch, tuple | list) else (patch,))]
    return math.lcm(*sides) if sides and min(sides) > 1 else None


def check_input_size(model: nn.Module, name: str, img_size: int) -> None:
    """Raise a :class:`~imgclf.errors.ModelError` naming ``--img-size`` unless ``model`` takes
    ``img_size``-pixel images whole: its patches (see :func:`patch_size`) must tile them -- else the last rows and
    columns are silently ignored -- and one forward pass of a 1-image batch must run (a kernel larger than the
    feature map left by the downsampling only fails there). ``model`` is left as it was (mode, weights).

    >>> check_input_size(create_model("lenet5", 3), "lenet5", 8)  # doctest: +SKIP
    ModelError: lenet5 cannot be built for 8-pixel images (--img-size 8): ...; use a larger --img-size (...)
    """
    patch = patch_size(model)
    if patch and img_size % patch:
        below, above = img_size // patch * patch, (img_size // patch + 1) * patch
        why = (f", so the last {img_size % patch} rows and columns would be ignored" if below
               else " (one patch is larger than the image)")  # fmt: skip
        sizes = f"{below} or {above}" if below else str(above)
        raise ModelError(f"{name} cannot be built for {img_size}-pixel images (--img-size {img_size}): its "
                         f"{patch}-pixel patches do not tile them{why}; use --img-size {sizes}")  # fmt: skip
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, img_size, img_size))  # (1, C, H, W)
    except (RuntimeError, AssertionError, ValueError) as exc:  # conv kernels, timm's size asserts, pooling
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        default = model_data_config(model).input_size
        hint = (f"use a larger --img-size ({name} is made for {default})" if img_size < default
                else f"use --img-size {default}, the size {name} is made for")  # fmt: skip
        raise ModelError(f"{name} cannot be built for {img_size}-pixel images (--img-size {img_size}): "
                         f"{reason}; {hint}") from exc  # fmt: skip
    finally:
        model.train(was_training)


def size_args(model: nn.Module, img_size: int) -> dict[str, int]:
    """``{"img_size": img_size}`` when ``model``'s architecture is built for one input size (ViT, DeiT, Swin,
    MaxViT... take ``img_size=``), else ``{}``: the arguments :func:`create_model` needs to build it for
    ``img_size``-pixel images.

    >>> size_args(create_model("resnet20_cifar", 3), 64)
    {}
    """
    try:
        takes = "img_size" in inspect.signature(type(model).__init__).parameters
    except (TypeError, ValueError):  # a C-implemented or odd __init__
        takes = False
    return {"img_size": int(img_size)} if takes else {}


def create_model(
    name: str, num_classes: int, *, weights: str | os.PathLike | None = None, drop_rate: float = 0.0,
    img_size: int | None = None,
    **builder_args: Any,
) -> nn.Module:
    """Build a classifier meeting the imgclf model contract.

    ``name``: a builtin (``resnet20_cifar``), any timm architecture (``resnet18``, ``timm/test_vit``) or a
    torchvision classifier (``tv/resnet18``). ``weights``: ``None`` (random init), ``"pretrained"`` (the library's
    default weights; needs the network or a cache) or a ``.safetensors`` file whose classifier is replaced when its
    class count differs. ``num_classes=0`` builds the backbone alone: ``forward`` gives the pooled features (an
    embedding model, e.g. what ``imgclf pretrain`` writes). ``builder_args`` go to a builtin's builder (an
    ensemble's ``members``, ``open_clip_image``'s tower configuration). The
    returned model has ``forward``, ``forward_features``, ``forward_head(x, pre_logits)``, ``reset_classifier``,
    ``get_classifier``, ``num_features`` and ``num_classes``. ``img_size`` builds a timm architecture made for one
    input size (ViT, Swin, ...) for that size (see :func:`size_args`); others ignore it.

    >>> model = create_model("test_cnn", num_classes=3)
    >>> model(torch.zeros(2, 3, 32, 32)).shape  # doctest: +SKIP
    torch.Size([2, 3])
    """
    _check_args(num_classes, drop_rate)
    resolved = resolve(name)
    if resolved.source == "classical":
        if weights is not None or builder_args:
            raise ModelError(f"classical model {name} takes no weights or arguments: it is fitted by `imgclf train`")
        return build_classical(name, num_classes)
    if builder_args and resolved.source != "builtin":
        raise ModelError(f"model {name} takes no arguments {sorted(builder_args)} (only builtins take extra arguments)")
    choice = parse_weights(weights)
    pretrained = choice == PRETRAINED
    if resolved.source == "builtin":
        entry = builtin_entry(resolved.arch)
        if pretrained:
            raise ModelError(
                f"builtin model {name} has no pretrained weights; train it from scratch (weights=None) "
                "or pass --weights FILE.safetensors"
            )
        model = entry.builder(num_classes, drop_rate=drop_rate, **builder_args)
        # read by model_data_config; a builder whose preprocessing depends on its arguments says so (open_clip)
        model.imgclf_data_config = getattr(model, "arch_data_config", None) or entry.data_config
    elif resolved.source == "timm":
        model = _build_timm(name, resolved.arch, num_classes, pretrained, drop_rate, img_size)
    else:
        try:
            model = build_torchvision(resolved.arch, num_classes, pretrained=pretrained, drop_rate=drop_rate)
        except ModelError:
            raise
        except Exception as exc:  # torchvision's downloader raises URLError, HTTPError, RuntimeError ...
            if pretrained:
                raise pretrained_error(name, exc) from exc
            raise
    if choice is not None and choice != PRETRAINED:
        load_weights_file(model, choice, name)
    return model


SOURCES = ("builtin", "classical", "timm", "torchvision")


def list_models(pattern: str | None = None, *, source: str | None = None) -> list[str]:
    """Every model name ``create_model`` accepts: builtins, timm architectures, then ``tv/`` classifiers.

    ``pattern`` is an fnmatch glob (``*resnet*``) or, without glob characters, a case-insensitive substring;
    ``source`` keeps one of "builtin", "timm", "torchvision". A timm name shadowed by a builtin is listed as
    ``timm/NAME``.

    >>> list_models("resnet*_cifar")
    ['resnet20_cifar', 'resnet56_cifar']
    """
    if source is not None and source not in SOURCES:
        raise ModelError(f"source={source!r} is not one of {', '.join(SOURCES)}")
    names: list[str] = []
    builtins = builtin_names()
    if source in (None, "builtin"):
        names += builtins
    if source in (None, "classical"):
        names += classical_names()
    if source in (None, "timm"):
        taken = set(builtins)
        names += [f"{TIMM_PREFIX}{n}" if n in taken else n for n in _timm().list_models()]
    if source in (None, "torchvision"):
        names += [f"{TV_PREFIX}{n}" for n in torchvision_names()]
    if not pattern:
        return names
    pat = pattern.lower()
    if any(c in pat for c in "*?["):
        return [n for n in names if fnmatch.fnmatchcase(n.lower(), pat)]
    return [n for n in names if pat in n.lower()]


def describe_model(name: str) -> dict:
    """Source, one-line description, default input size and pretrained availability of ``name`` (for listings).

    >>> describe_model("resnet20_cifar")["source"]
    'builtin'
    """
    r = resolve(name)
    if r.source == "builtin":
        entry = builtin_entry(r.arch)
        return {
            "name": name, "source": "builtin", "description": entry.description,
            "input_size": entry.data_config.input_size, "pretrained": False,
        }  # fmt: skip
    if r.source == "classical":
        return {"name": name, "source": "classical", "description": CLASSICAL[r.arch].description,
                "input_size": 32, "pretrained": False}  # fmt: skip
    if r.source == "timm":
        cfg = _timm().models.get_pretrained_cfg(r.arch)
        has_weights = bool(cfg and (cfg.hf_hub_id or cfg.url or cfg.file))
        tag = f", default weights {cfg.architecture}.{cfg.tag}" if has_weights and cfg.tag else ""
        return {
            "name": name, "source": "timm", "description": f"timm architecture {r.arch}{tag}",
            "input_size": int(cfg.input_size[-1]) if cfg else 224, "pretrained": has_weights,
        }  # fmt: skip
    return {
        "name": name, "source": "torchvision", "description": f"torchvision classifier {r.arch} (adapted)",
        "input_size": torchvision_data_config(r.arch).input_size, "pretrained": True,
    }  # fmt: skip
