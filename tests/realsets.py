"""Real-data builders for multi-label and hierarchical tests: small, seeded, written once into a folder.

``mnist_multilabel_manifest`` composes 2-3 real MNIST digits on a 56x56 canvas (one digit per 28x28 quadrant, so
they never overlap) and writes PNGs plus ``manifest.csv`` (``path,labels,split``; labels = the set of digits
present). ``cifar_hierarchy_yaml`` writes the two-level CIFAR-10 taxonomy (vehicle / animal).

>>> # @pytest.fixture(scope="session")
>>> # def mnist_ml(mnist_dir, tmp_path_factory):
>>> #     return mnist_multilabel_manifest(mnist_dir, tmp_path_factory.mktemp("mnist-ml"))
"""

from __future__ import annotations

import os
from pathlib import Path

from imgclf.data import make_multilabel_composites

CIFAR_HIERARCHY = {
    "vehicle": ["airplane", "automobile", "ship", "truck"],
    "animal": ["bird", "cat", "deer", "dog", "frog", "horse"],
}


def mnist_multilabel_manifest(mnist_dir: str | os.PathLike, out_dir: str | os.PathLike, n_train: int = 2000,
                              n_test: int = 500, seed: int = 0) -> Path:  # fmt: skip
    """Multi-label MNIST (:func:`imgclf.data.make_multilabel_composites`): 2-3 digits on a 56x56 canvas."""
    return make_multilabel_composites(mnist_dir, out_dir, n_train=n_train, n_test=n_test, seed=seed)


def cifar_hierarchy_yaml(out_path: str | os.PathLike) -> Path:
    """Write the CIFAR-10 taxonomy (vehicle: airplane, automobile, ship, truck; animal: bird, cat, deer, dog,
    frog, horse) as hierarchy YAML; the two top nodes get the implicit root. Returns the path."""
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{node}: [{', '.join(children)}]\n" for node, children in CIFAR_HIERARCHY.items()))
    return path
