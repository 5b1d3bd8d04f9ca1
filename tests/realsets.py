"""Real-data builders for multi-label and hierarchical tests: small, seeded, written once into a folder.

``mnist_multilabel_manifest`` composes 2-3 real MNIST digits on a 56x56 canvas (one digit per 28x28 quadrant, so
they never overlap) and writes PNGs plus ``manifest.csv`` (``path,labels,split``; labels = the set of digits
present). ``cifar_hierarchy_yaml`` writes the two-level CIFAR-10 taxonomy (vehicle / animal).

>>> # @pytest.fixture(scope="session")
>>> # def mnist_ml(mnist_dir, tmp_path_factory):
>>> #     return mnist_multilabel_manifest(mnist_dir, tmp_path_factory.mktemp("mnist-ml"))
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR_HIERARCHY = {
    "vehicle": ["airplane", "automobile", "ship", "truck"],
    "animal": ["bird", "cat", "deer", "dog", "frog", "horse"],
}
CANVAS = 56
QUADRANTS = ((0, 0), (0, 28), (28, 0), (28, 28))  # (top, left) of each 28x28 cell


def _digit_files(split_dir: Path) -> dict[int, list[Path]]:
    return {d: sorted((split_dir / str(d)).iterdir()) for d in range(10)}


def _compose(files: dict[int, list[Path]], rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    """A (56, 56) uint8 canvas with 2 or 3 digits in distinct quadrants, and the digits placed (with repeats)."""
    k = int(rng.integers(2, 4))
    canvas = np.zeros((CANVAS, CANVAS), np.uint8)
    digits = [int(d) for d in rng.integers(0, 10, size=k)]
    for digit, q in zip(digits, rng.choice(4, size=k, replace=False), strict=True):
        pool = files[digit]
        with Image.open(pool[int(rng.integers(len(pool)))]) as im:
            arr = np.asarray(im.convert("L"))  # (28, 28)
        top, left = QUADRANTS[int(q)]
        canvas[top : top + 28, left : left + 28] = arr
    return canvas, digits


def mnist_multilabel_manifest(mnist_dir: str | os.PathLike, out_dir: str | os.PathLike, n_train: int = 2000,
                              n_test: int = 500, seed: int = 0) -> Path:  # fmt: skip
    """Write a multi-label MNIST set into ``out_dir`` and return its ``manifest.csv``.

    Train images use digits from MNIST train, test images digits from MNIST test (no digit image crosses
    splits). The manifest has no val rows: ``load_source`` carves val from train. A finished folder with the
    same arguments is reused (a ``.complete`` marker records them), so a session builds it once.
    """
    out = Path(out_dir)
    manifest = out / "manifest.csv"
    params = {"n_train": n_train, "n_test": n_test, "seed": seed, "mnist": str(Path(mnist_dir).resolve())}
    marker = out / ".complete"
    if marker.is_file() and json.loads(marker.read_text()) == params and manifest.is_file():
        return manifest
    rng = np.random.default_rng(seed)
    lines = ["path,labels,split"]
    for split, count in (("train", n_train), ("test", n_test)):
        files = _digit_files(Path(mnist_dir) / split)
        (out / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            canvas, digits = _compose(files, rng)
            name = f"{split}/{i:05d}.png"
            Image.fromarray(canvas, mode="L").save(out / name)
            lines.append(f"{name},{';'.join(str(d) for d in sorted(set(digits)))},{split}")
    manifest.write_text("\n".join(lines) + "\n")
    marker.write_text(json.dumps(params))
    return manifest


def cifar_hierarchy_yaml(out_path: str | os.PathLike) -> Path:
    """Write the CIFAR-10 taxonomy (vehicle: airplane, automobile, ship, truck; animal: bird, cat, deer, dog,
    frog, horse) as hierarchy YAML; the two top nodes get the implicit root. Returns the path."""
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{node}: [{', '.join(children)}]\n" for node, children in CIFAR_HIERARCHY.items()))
    return path
