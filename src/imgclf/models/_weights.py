"""Starting weights: parse the ``weights`` argument and load ``.safetensors`` files (never pickles).

A file's keys are matched after stripping wrapper prefixes (``module.`` from DDP, ``model.`` from wrappers and our
torchvision adapter, ``_orig_mod.`` from ``torch.compile``) on both sides. Classifier tensors whose shape differs
are dropped so the model keeps a fresh head for the user's classes; anything else that does not fit is an error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from imgclf.errors import ModelError

PRETRAINED = "pretrained"
_PREFIXES = ("module.", "_orig_mod.", "model.")
_SHOW = 5  # keys listed in an error message


def parse_weights(weights: str | os.PathLike | None) -> str | Path | None:
    """``None`` (random init), ``"pretrained"`` or the Path of an existing ``.safetensors`` file."""
    if weights is None:
        return None
    if not isinstance(weights, str | os.PathLike):
        raise ModelError(f"weights must be None, 'pretrained' or a path to a .safetensors file, got {weights!r}")
    if str(weights) == PRETRAINED:
        return PRETRAINED
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ModelError(
            f"weights file {path} does not exist. --weights takes 'pretrained' or a path to a .safetensors file "
            "(or a bundle / `imgclf pretrain` run directory)."
        )
    if path.suffix != ".safetensors":
        raise ModelError(
            f"weights file {path} is not a .safetensors file; imgclf never unpickles weight files (.pt/.pth/.bin "
            'can run code). Convert it once: python -c "import torch, safetensors.torch as s; '
            f"s.save_file(torch.load('{path.name}', weights_only=True), '{path.stem}.safetensors')\""
        )
    return path


def pretrained_error(name: str, exc: BaseException) -> ModelError:
    """The error raised when a library's pretrained loader fails (usually: offline, nothing cached)."""
    reason = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:300]
    return ModelError(
        f"could not load pretrained weights for {name} ({reason}). "
        "Offline? Save them once as safetensors and pass --weights FILE.safetensors"
    )


@dataclass(frozen=True)
class LoadReport:
    """What a weights file contributed: tensors loaded and classifier tensors left freshly initialised."""

    path: str
    loaded: int
    fresh_head: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"path": self.path, "loaded": self.loaded, "fresh_head": list(self.fresh_head)}


def _strip(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for p in _PREFIXES:
            if key.startswith(p):
                key, changed = key[len(p) :], True
    return key


def _normalise(keys: list[str]) -> dict[str, str]:
    """normalised key -> original key; identity when stripping would make two keys collide."""
    out = {_strip(k): k for k in keys}
    return out if len(out) == len(keys) else {k: k for k in keys}


def _head_keys(model: nn.Module) -> set[str]:
    heads = model.get_classifier() if hasattr(model, "get_classifier") else ()
    heads = heads if isinstance(heads, tuple | list) else (heads,)
    ids = {id(h) for h in heads if isinstance(h, nn.Module)}
    keys = set()
    for mname, module in model.named_modules(remove_duplicate=False):
        if id(module) in ids:
            keys |= {f"{mname}.{k}" if mname else k for k in module.state_dict()}
    return keys


def _listing(what: str, keys: list[str]) -> str:
    more = f" and {len(keys) - _SHOW} more" if len(keys) > _SHOW else ""
    return f"{len(keys)} {what} ({', '.join(keys[:_SHOW])}{more})"


def load_weights_file(model: nn.Module, path: Path, name: str) -> LoadReport:
    """Load a ``.safetensors`` state dict into ``model`` in place, keeping a fresh head on a class-count mismatch.

    >>> load_weights_file(create_model("test_cnn", 5), Path("cnn3.safetensors"), "test_cnn")  # doctest: +SKIP
    LoadReport(path='cnn3.safetensors', loaded=12, fresh_head=('fc.weight', 'fc.bias'))
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(
            f"weights file {path} is not a readable safetensors file ({exc}). Save weights with "
            "safetensors.torch.save_file(model.state_dict(), 'FILE.safetensors')."
        ) from exc
    own = model.state_dict()
    model_keys = _normalise(list(own))
    file_keys = _normalise(list(tensors))
    head_orig = _head_keys(model)
    head = {k for k, orig in model_keys.items() if orig in head_orig}

    missing = [k for k in model_keys if k not in file_keys and k not in head and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in file_keys if k not in model_keys]
    wrong, fresh, state = [], [], {}
    for k, orig in model_keys.items():
        if k not in file_keys:
            if k in head:
                fresh.append(orig)
            continue
        t = tensors[file_keys[k]]
        if t.shape != own[orig].shape:
            if k in head:
                fresh.append(orig)
            else:
                wrong.append(f"{k}: file {tuple(t.shape)} vs model {tuple(own[orig].shape)}")
            continue
        state[orig] = t
    if missing or unexpected or wrong:
        problems = [
            _listing(w, ks)
            for w, ks in (("missing", missing), ("unexpected", unexpected), ("with the wrong shape", wrong))
            if ks
        ]
        raise ModelError(
            f"weights file {path} does not fit {name}: {'; '.join(problems)}. Was it saved from another "
            "architecture? Pass the model name it was trained with."
        )
    with torch.no_grad():
        model.load_state_dict(state, strict=False)
    return LoadReport(path=str(path), loaded=len(state), fresh_head=tuple(sorted(fresh)))


def load_weights(model: nn.Module, path: str | os.PathLike) -> LoadReport:
    """Load a ``.safetensors`` file into a built model (fresh classifier when the class count differs).

    >>> report = load_weights(create_model("resnet20_cifar", 5), "cifar10.safetensors")  # doctest: +SKIP
    >>> report.fresh_head  # doctest: +SKIP
    ('fc.bias', 'fc.weight')
    """
    choice = parse_weights(path)
    if not isinstance(choice, Path):
        raise ModelError(f"load_weights needs a .safetensors file, got {path!r}")
    return load_weights_file(model, choice, type(model).__name__)
