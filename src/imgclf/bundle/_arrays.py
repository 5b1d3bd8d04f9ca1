"""Named tensors that travel with a bundle (e.g. a rejection rule's fitted statistics) in safetensors files beside
the weights, each checked against the sha256 recorded in ``imgclf.json`` -- never pickle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from imgclf.errors import BundleError
from imgclf.utils import atomic_write_bytes, sha256_bytes

REJECTION_FILE = "rejection.safetensors"


def save_arrays(directory: str | Path, name: str, tensors: dict[str, torch.Tensor]) -> dict[str, str]:
    """Write ``tensors`` to ``directory/name`` (safetensors, atomically); returns ``{"file", "sha256"}`` to record
    in ``imgclf.json``.

    >>> save_arrays("runs/x/bundle", "rejection.safetensors", {"means": torch.zeros(3, 8)})  # doctest: +SKIP
    {'file': 'rejection.safetensors', 'sha256': '...'}
    """
    if Path(name).name != name:
        raise BundleError(f"bundle array file {name!r} must be a plain file name inside the bundle directory")
    data = st_save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
    atomic_write_bytes(Path(directory) / name, data)
    return {"file": name, "sha256": sha256_bytes(data)}


def load_arrays(directory: str | Path, entry: dict[str, Any] | None) -> dict[str, torch.Tensor]:
    """The tensors an ``imgclf.json`` entry (``{"file", "sha256"}``) refers to; ``{}`` when it names no file.

    Raises BundleError when the file is missing, altered (sha256) or unreadable, or leaves the bundle directory.
    """
    if not entry or not entry.get("file"):
        return {}
    name = str(entry["file"])
    path = Path(directory) / name
    if Path(name).name != name:
        raise BundleError(f"imgclf.json refers to {name!r}, outside the bundle directory; re-run that step")
    if not path.is_file():
        raise BundleError(f"{path} is missing; the bundle is incomplete (re-run `imgclf robustness` to rewrite it)")
    raw = path.read_bytes()
    if entry.get("sha256") and sha256_bytes(raw) != entry["sha256"]:
        raise BundleError(f"{path} does not match the sha256 recorded in imgclf.json: it was changed or damaged")
    try:
        return st_load(raw)
    except SafetensorError as exc:
        raise BundleError(f"{path} is not a readable safetensors file ({exc})") from exc
