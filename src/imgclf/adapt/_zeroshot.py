"""Zero-shot heads from open_clip: each class is the normalised, template-averaged text embedding of its name.

The bundle holds only the image tower (``open_clip_image``) and a head whose rows are those text embeddings times
CLIP's logit scale; the text tower is used once, here, and never shipped. A CLIP model is named by
``ARCH:TAG`` (an open_clip architecture and pretrained tag; downloads when online), ``hf-hub:ORG/REPO``, a local
directory holding ``open_clip_config.json`` and a ``.safetensors`` file, or a ``.safetensors`` weights file with
``config=`` (an ``open_clip_config.json``: ``model_cfg`` and ``preprocess_cfg``). A bare weights file is refused:
without its preprocessing the bundle could not promise the preprocessing its embeddings were trained with.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from imgclf.bundle import Bundle, BundleMeta, read_meta, save_bundle
from imgclf.errors import ConfigError, DataError, ModelError
from imgclf.models import create_model
from imgclf.utils import optional_import

CONFIG_FILE = "open_clip_config.json"
#: the 7-prompt ensemble of the CLIP authors' ImageNet notebook (a good default for photos)
DEFAULT_TEMPLATES = ("itap of a {}.", "a bad photo of the {}.", "a origami {}.", "a photo of the large {}.",
                     "a {} in a video game.", "art of the {}.", "a photo of the small {}.")  # fmt: skip


def read_lines(path: str | Path, what: str) -> list[str]:
    """Non-empty, non-comment lines of a text file (class names or templates), or a DataError naming it."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{what} file {p} does not exist")
    lines = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines()]
    out = [ln for ln in lines if ln and not ln.startswith("#")]
    if not out:
        raise DataError(f"{what} file {p} has no entries (one per line)")
    return out


def check_templates(templates: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Templates must each hold one ``{}`` where the class name goes."""
    bad = [t for t in templates if t.count("{}") != 1]
    if bad or not templates:
        raise ConfigError(f"prompt templates need exactly one '{{}}' for the class name, e.g. 'a photo of a {{}}.'; "
                          f"bad: {bad[:3]}")  # fmt: skip
    return tuple(templates)


@dataclass(frozen=True)
class ClipModel:
    """A loaded open_clip model, its tokenizer, and its configuration (``model_cfg``, ``preprocess_cfg``)."""

    model: Any
    tokenizer: Any
    model_cfg: dict[str, Any]
    preprocess_cfg: dict[str, Any]
    source: str


def _local_dir(directory: Path) -> str:
    if not (directory / CONFIG_FILE).is_file():
        raise ModelError(f"{directory} has no {CONFIG_FILE}: a local CLIP model is a folder with its open_clip "
                         f"config ({{'model_cfg': ..., 'preprocess_cfg': ...}}) and a .safetensors file")  # fmt: skip
    if not list(directory.glob("*.safetensors")):
        raise ModelError(f"{directory} has no .safetensors weights; imgclf never unpickles .bin/.pth files. Convert "
                         "them once with safetensors.torch.save_file")  # fmt: skip
    cfg = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
    if not cfg.get("preprocess_cfg"):
        raise ModelError(f"{directory / CONFIG_FILE} has no preprocess_cfg (image size, mean, std); a bundle must "
                         "carry the preprocessing the weights were trained with. Add it to the config")  # fmt: skip
    return f"local-dir:{directory}"


def load_clip(spec: str, *, config: str | Path | None = None, device: str = "cpu") -> ClipModel:
    """Load an open_clip model from ``ARCH:TAG``, ``hf-hub:...``, a local folder or weights + ``config``."""
    open_clip = optional_import("open_clip", "fewlabels")
    p = Path(spec)
    with tempfile.TemporaryDirectory() as tmp:
        if p.is_file():
            if p.suffix != ".safetensors":
                raise ModelError(f"{p} is not a .safetensors file; imgclf never unpickles weights. Convert it once "
                                 "with safetensors.torch.save_file")  # fmt: skip
            if config is None:
                raise ModelError(f"{p} is a bare weights file: pass its open_clip config with --config "
                                 f"({CONFIG_FILE} with model_cfg and preprocess_cfg) so the bundle knows its "
                                 "preprocessing")  # fmt: skip
            cfg_path = Path(config)
            if not cfg_path.is_file():
                raise ModelError(f"--config {cfg_path} does not exist")
            (Path(tmp) / CONFIG_FILE).symlink_to(cfg_path.resolve())
            (Path(tmp) / "open_clip_model.safetensors").symlink_to(p.resolve())
            name, pretrained = _local_dir(Path(tmp)), None
        elif p.is_dir():
            name, pretrained = _local_dir(p), None
        elif spec.startswith("hf-hub:"):
            name, pretrained = spec, None
        else:
            name, _, pretrained = spec.partition(":")
            if name not in open_clip.list_models():
                raise ModelError(f"{spec!r} is neither a file, a folder nor an open_clip architecture; see "
                                 "open_clip.list_pretrained() (e.g. ViT-B-32:laion2b_s34b_b79k)")  # fmt: skip
        try:
            model = open_clip.create_model(name, pretrained=pretrained or None, device=device)
            tokenizer = open_clip.get_tokenizer(name)
        except (RuntimeError, OSError, ValueError) as exc:
            raise ModelError(f"could not load CLIP model {spec} ({str(exc).splitlines()[0][:200]}). Offline? Use a "
                             "local folder with open_clip_config.json and .safetensors weights") from exc  # fmt: skip
        model_cfg = (json.loads((Path(name[len("local-dir:"):]) / CONFIG_FILE).read_text())["model_cfg"]
                     if name.startswith("local-dir:") else open_clip.get_model_config(name))  # fmt: skip
    if not model_cfg:
        raise ModelError(f"no model configuration found for CLIP model {spec}")
    preprocess = open_clip.get_model_preprocess_cfg(model) if hasattr(open_clip, "get_model_preprocess_cfg") else {}
    return ClipModel(model.eval(), tokenizer, dict(model_cfg), dict(preprocess), spec)


@torch.inference_mode()
def text_head(clip: ClipModel, classes: list[str] | tuple[str, ...], templates: list[str] | tuple[str, ...]
              ) -> torch.Tensor:  # fmt: skip
    """``(C, E)`` unit rows: per class, the normalised mean of its normalised template embeddings.

    >>> # text_head(clip, ["cat", "dog"], ["a photo of a {}."]).shape  # (2, E)
    """
    rows = []
    for name in classes:
        tokens = clip.tokenizer([t.format(name) for t in templates])  # (T, L)
        emb = clip.model.encode_text(tokens, normalize=True)  # (T, E)
        rows.append(torch.nn.functional.normalize(emb.mean(dim=0), dim=0))
    return torch.stack(rows).float()


def clip_logit_scale(clip: ClipModel) -> float:
    scale = getattr(clip.model, "logit_scale", None)
    return float(scale.detach().exp().reshape(-1)[0]) if scale is not None else 100.0


def zeroshot_bundle(spec: str | ClipModel, classes: list[str] | tuple[str, ...], out: str | Path, *,
                    templates: list[str] | tuple[str, ...] = DEFAULT_TEMPLATES,
                    config: str | Path | None = None) -> Bundle:  # fmt: skip
    """Write a bundle that classifies into ``classes`` by CLIP image-text similarity; no training images needed.

    >>> # zeroshot_bundle("ViT-B-32:laion2b_s34b_b79k", ["ant", "bee"], "runs/zs").meta.classes
    """
    classes = [c.strip() for c in classes if c.strip()]
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise ConfigError(f"--classes needs at least two distinct names, got {classes}")
    templates = check_templates(templates)
    clip = spec if isinstance(spec, ClipModel) else load_clip(spec, config=config)
    rows = text_head(clip, classes, templates) * clip_logit_scale(clip)  # (C, E)
    cfg = clip.model_cfg
    arch_args = {"embed_dim": int(cfg["embed_dim"]), "vision_cfg": dict(cfg["vision_cfg"]),
                 "quick_gelu": bool(cfg.get("quick_gelu", False)), "preprocess": clip.preprocess_cfg}  # fmt: skip
    model = create_model("open_clip_image", len(classes), **arch_args)
    model.visual.load_state_dict(clip.model.visual.state_dict())
    with torch.no_grad():
        model.head.weight.copy_(rows)
        model.head.bias.zero_()
    record = {"kind": "zeroshot", "clip": clip.source, "templates": list(templates),
              "logit_scale": clip_logit_scale(clip)}  # fmt: skip
    meta = BundleMeta(architecture="open_clip_image", classes=tuple(classes),
                      preprocessing=model.imgclf_data_config, arch_args=arch_args, task={"kind": "single"},
                      extra={"head": record})  # fmt: skip
    directory = save_bundle(out, model.eval(), meta)
    return Bundle(model.eval(), read_meta(directory), directory)
