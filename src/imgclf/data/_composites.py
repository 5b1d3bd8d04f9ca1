"""Multi-label images made from a single-label folder tree: 2-3 objects per picture, one per quadrant.

Real multi-label data (scenes with several objects) is rare among small public sets; composing real single-label
images gives multi-label data whose truth is exact, for demos, tutorials and tests.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from imgclf.errors import DataError


def _class_files(split_dir: Path) -> dict[str, list[Path]]:
    if not split_dir.is_dir():
        raise DataError(f"{split_dir} does not exist: make_multilabel_composites needs ROOT/train/<class>/ and "
                        "ROOT/test/<class>/ folders")  # fmt: skip
    files = {d.name: sorted(p for p in d.iterdir() if p.is_file()) for d in sorted(split_dir.iterdir()) if d.is_dir()}
    files = {name: paths for name, paths in files.items() if paths}
    if len(files) < 2:
        raise DataError(f"{split_dir} has fewer than two class folders with images; nothing to compose")
    return files


def make_multilabel_composites(source: str | os.PathLike, out_dir: str | os.PathLike, *, n_train: int = 2000,
                               n_test: int = 500, seed: int = 0) -> Path:  # fmt: skip
    """Write ``n_train`` + ``n_test`` composites of ``source`` (``ROOT/{train,test}/<class>/`` images of one size,
    e.g. MNIST) into ``out_dir`` and return its ``manifest.csv`` (``path,labels,split``; ``labels`` joins the
    classes present with ``;``). Each composite is a 2x2 grid of cells of the source's image size with 2-3 images
    in distinct cells (never overlapping), train from train and test from test images only. A finished folder with
    the same arguments is reused.

    >>> # manifest = make_multilabel_composites("mnist/", "mnist-ml/", n_train=2000, n_test=500)
    >>> # imgclf.fit(manifest, model="resnet20_cifar", img_size=32)   # a multi-label model
    """
    root, out = Path(source), Path(out_dir)
    manifest, marker = out / "manifest.csv", out / ".complete"
    params = {"n_train": n_train, "n_test": n_test, "seed": seed, "source": str(root.resolve())}
    if marker.is_file() and json.loads(marker.read_text()) == params and manifest.is_file():
        return manifest
    rng = np.random.default_rng(seed)
    lines = ["path,labels,split"]
    for split, count in (("train", n_train), ("test", n_test)):
        files = _class_files(root / split)
        names = list(files)
        with Image.open(files[names[0]][0]) as first:
            cell, mode = first.size, "L" if first.mode in ("L", "1", "I;16") else "RGB"
        (out / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            canvas = Image.new(mode, (2 * cell[0], 2 * cell[1]))
            k = int(rng.integers(2, 4))
            present = set()
            for q in rng.choice(4, size=k, replace=False).tolist():
                name = names[int(rng.integers(len(names)))]
                pool = files[name]
                with Image.open(pool[int(rng.integers(len(pool)))]) as im:
                    canvas.paste(im.convert(mode).resize(cell), ((q % 2) * cell[0], (q // 2) * cell[1]))
                present.add(name)
            rel = f"{split}/{i:05d}.png"
            canvas.save(out / rel)
            lines.append(f"{rel},{';'.join(sorted(present))},{split}")
    manifest.write_text("\n".join(lines) + "\n")
    marker.write_text(json.dumps(params))
    return manifest
