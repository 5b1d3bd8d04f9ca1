"""Embeddings: one pooled feature vector per image from a bundle's backbone, saved and searched.

The vectors come from THE inference pass (:func:`imgclf.engine.run_inference` with ``features=True``): the same
preprocessing as predict, unreadable files skipped and named. They are written as Parquet (``path`` and
``embedding`` columns), ``.npy`` (the array, with the paths in ``<name>.paths.txt`` beside it) or an index
directory (``embeddings.safetensors`` + ``index.json``) that :func:`nearest` searches by cosine similarity.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from imgclf import data as D
from imgclf.bundle import Bundle
from imgclf.engine import run_inference
from imgclf.errors import ConfigError, DataError
from imgclf.utils import atomic_write_text, optional_import

INDEX_FILE = "index.json"
VECTORS_FILE = "embeddings.safetensors"
FORMATS = (".parquet", ".npy", "a directory (a neighbour index)")


@dataclass(frozen=True)
class Embeddings:
    """``vectors`` ``(N, D)`` float32 for the readable ``paths`` (in input order); ``skipped`` the unreadable ones;
    ``model`` records the bundle that made them (architecture and weights sha256)."""

    paths: tuple[str, ...]
    vectors: np.ndarray
    skipped: tuple[str, ...] = ()
    model: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"n": len(self.paths), "dim": int(self.vectors.shape[1]) if self.vectors.ndim == 2 else 0,
                "skipped": list(self.skipped), "model": self.model}  # fmt: skip


def _model_record(bundle: Bundle) -> dict[str, str]:
    return {"architecture": bundle.meta.architecture, "weights_sha256": bundle.meta.weights_sha256,
            "path": str(bundle.path) if bundle.path else ""}  # fmt: skip


def embed_images(bundle: Bundle, inputs: Any, *, batch_size: int = 64) -> Embeddings:
    """Pooled pre-logit features of every readable input (paths, folders, globs, arrays) with ``bundle``.

    >>> # emb = embed_images(load_bundle("runs/x/bundle"), ["photos/"]); emb.vectors.shape  # (N, D)
    """
    images = inputs if isinstance(inputs, D.InputImages) else D.InputImages(inputs)
    if len(images) == 0:
        raise DataError("no images to embed: the inputs matched no image files")
    out = run_inference(bundle.model, images, bundle.meta.preprocessing, batch_size=batch_size, features=True)
    names = images.names
    kept = [names[int(i)] for i in out.indices]
    skipped = tuple(n for i, n in enumerate(names) if i not in set(out.indices.tolist()))
    vectors = out.features if out.features is not None and len(kept) else np.zeros((0, 0), np.float32)
    return Embeddings(tuple(kept), np.ascontiguousarray(vectors, dtype=np.float32), skipped, _model_record(bundle))


def save_embeddings(emb: Embeddings, out: str | Path) -> Path:
    """Write ``emb`` as ``.parquet``, ``.npy`` (+ ``.paths.txt``) or, for any other name, an index directory."""
    out = Path(out)
    if out.suffix == ".parquet":
        pa = optional_import("pyarrow", "fewlabels")
        pq = optional_import("pyarrow.parquet", "fewlabels")
        dim = emb.vectors.shape[1]
        col = pa.FixedSizeListArray.from_arrays(pa.array(emb.vectors.reshape(-1), pa.float32()), dim)
        table = pa.table({"path": pa.array(list(emb.paths), pa.string()), "embedding": col})
        table = table.replace_schema_metadata({"imgclf": json.dumps(emb.model or {})})
        out.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, out)
    elif out.suffix == ".npy":
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, emb.vectors)
        atomic_write_text(out.with_suffix(".paths.txt"), "".join(f"{p}\n" for p in emb.paths))
    elif out.suffix:
        raise ConfigError(f"--out {out}: unknown embedding format {out.suffix!r}; use one of {', '.join(FORMATS)}")
    else:
        out.mkdir(parents=True, exist_ok=True)
        save_file({"vectors": torch.from_numpy(emb.vectors)}, str(out / VECTORS_FILE))
        record = {"paths": list(emb.paths), "model": emb.model, "dim": int(emb.vectors.shape[1])}
        atomic_write_text(out / INDEX_FILE, json.dumps(record, indent=2) + "\n")
    return out


def load_embeddings(path: str | Path) -> Embeddings:
    """Read what :func:`save_embeddings` wrote (a ``.parquet`` / ``.npy`` file or an index directory)."""
    path = Path(path)
    if path.is_dir():
        meta_file = path / INDEX_FILE
        if not meta_file.is_file():
            raise DataError(f"{path} is not an embedding index: {INDEX_FILE} is missing. Build one with "
                            f"`imgclf embed MODEL IMAGES --out {path}`")  # fmt: skip
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        vectors = load_file(str(path / VECTORS_FILE))["vectors"].numpy()
        return Embeddings(tuple(meta["paths"]), vectors, (), meta.get("model"))
    if path.suffix == ".parquet" and path.is_file():
        pq = optional_import("pyarrow.parquet", "fewlabels")
        table = pq.read_table(path)
        vectors = np.asarray(table.column("embedding").combine_chunks().flatten(), np.float32)
        paths = table.column("path").to_pylist()
        model = json.loads((table.schema.metadata or {}).get(b"imgclf", b"{}")) or None
        return Embeddings(tuple(paths), vectors.reshape(len(paths), -1), (), model)
    if path.suffix == ".npy" and path.is_file():
        names = path.with_suffix(".paths.txt")
        paths = names.read_text(encoding="utf-8").splitlines() if names.is_file() else []
        vectors = np.load(path, allow_pickle=False)
        if len(paths) != len(vectors):
            paths = [f"{path.name}[{i}]" for i in range(len(vectors))]
        return Embeddings(tuple(paths), vectors.astype(np.float32), (), None)
    raise DataError(f"{path}: no embedding file or index there; write one with `imgclf embed MODEL IMAGES --out`")


@dataclass(frozen=True)
class Neighbours:
    """The ``k`` nearest indexed images to one query, most similar first (cosine similarity in [-1, 1])."""

    query: str
    paths: tuple[str, ...]
    similarities: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        found = [{"path": p, "similarity": s} for p, s in zip(self.paths, self.similarities)]
        return {"query": self.query, "neighbours": found}


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def nearest(bundle: Bundle, queries: Any, index: str | Path | Embeddings, *, k: int = 5,
            batch_size: int = 64) -> list[Neighbours]:  # fmt: skip
    """The ``k`` most cosine-similar indexed images for each readable query image.

    The index must come from the same weights (its recorded sha256 is checked) or the distances mean nothing.

    >>> # nearest(bundle, ["q.jpg"], "runs/index", k=3)[0].paths
    """
    if k < 1:
        raise ConfigError(f"k={k} must be at least 1")
    idx = index if isinstance(index, Embeddings) else load_embeddings(index)
    made_by = (idx.model or {}).get("weights_sha256")
    if made_by and bundle.meta.weights_sha256 and made_by != bundle.meta.weights_sha256:
        source = (idx.model or {}).get("path") or made_by[:12]
        raise DataError(f"the index {index} was built with other weights ({source}); rebuild it with "
                        "`imgclf embed` and this model")  # fmt: skip
    q = embed_images(bundle, queries, batch_size=batch_size)
    if q.vectors.shape[0] and q.vectors.shape[1] != idx.vectors.shape[1]:
        raise DataError(f"the index holds {idx.vectors.shape[1]}-d embeddings but this model makes "
                        f"{q.vectors.shape[1]}-d ones; rebuild the index with this model")  # fmt: skip
    sims = _unit(q.vectors) @ _unit(idx.vectors).T  # (Q, N)
    k = min(k, sims.shape[1])
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return [Neighbours(name, tuple(idx.paths[j] for j in row), tuple(float(sims[i, j]) for j in row))
            for i, (name, row) in enumerate(zip(q.paths, order))]  # fmt: skip

