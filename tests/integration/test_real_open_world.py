"""Real data, issue 16: rejection that catches another domain, C&W against PGD, test-time adaptation on CIFAR-10.

Small models on a few thousand images (a few minutes on 2 CPU cores); the rejection rule is the one
``imgclf robustness`` stores without an outlier folder, and every rejection figure goes through ``predict``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import imgclf
from imgclf import data as D
from imgclf import robustness as R
from imgclf.bundle import load_bundle, read_meta, split_samples
from imgclf.robustness import robustness

pytestmark = [pytest.mark.real, pytest.mark.slow]


def _files(folder: Path, n: int, seed: int = 0) -> list[str]:
    paths = sorted(str(p) for p in folder.rglob("*") if p.suffix in (".png", ".jpg"))
    return [paths[i] for i in sorted(np.random.default_rng(seed).choice(len(paths), n, replace=False))]


def _train_and_store(data: Path, out: Path, name: str, model: str, epochs: int, sets: list[str]) -> Path:
    clf = imgclf.fit(data, model=model, epochs=epochs, batch_size=64, out=str(out), name=name,
                     sets=["data.workers=0", *sets])  # fmt: skip
    robustness(clf.result_.bundle_dir, str(data), attacks=(), corruptions=False, max_images=300)  # no --ood
    return clf.result_.bundle_dir


@pytest.fixture(scope="module")
def mnist_bundle(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train_and_store(mnist_dir, tmp_path_factory.mktemp("mnist"), "mnist", "lenet5", 4,
                            ["data.max_per_class=300", "data.augment=none", "optim.lr=2e-3"])  # fmt: skip


@pytest.fixture(scope="module")
def cifar_bundle(cifar10_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small BatchNorm CNN (test_cnn) on 500 images per class: weak (about 40%), but enough to tell CIFAR
    from digits, and BatchNorm lets test-time adaptation work."""
    return _train_and_store(cifar10_dir, tmp_path_factory.mktemp("cifar"), "cifar", "test_cnn", 8,
                            ["data.max_per_class=500", "optim.lr=3e-3"])  # fmt: skip


def _unknown_rate(bundle: Path, files: list[str]) -> float:
    preds = imgclf.load(bundle).predict(files, top_k=1)
    return float(np.mean([p.label == "unknown" for p in preds]))


def test_an_mnist_model_rejects_cifar_images_and_keeps_its_digits(mnist_bundle: Path, mnist_dir: Path,
                                                                   cifar10_dir: Path) -> None:  # fmt: skip
    rejected = _unknown_rate(mnist_bundle, _files(cifar10_dir / "test", 500))
    accepted = 1 - _unknown_rate(mnist_bundle, _files(mnist_dir / "test", 500))
    rule = read_meta(mnist_bundle).rejection
    print(f"MNIST model, rule {rule['score']}: rejects {rejected:.1%} of CIFAR-10, keeps {accepted:.1%} of MNIST")
    assert rejected >= 0.95 and accepted >= 0.90, (rule["score"], rejected, accepted)
    card = (mnist_bundle.parent / "model_card.md").read_text()
    assert f"`{rule['score']}`" in card and "why this rule" in card


def test_a_cifar_model_answers_unknown_for_digits_and_keeps_its_images(cifar_bundle: Path, mnist_dir: Path,
                                                                      cifar10_dir: Path) -> None:  # fmt: skip
    """Also issue 10: the stored threshold makes predict answer unknown for >= 80% of MNIST digits."""
    rejected = _unknown_rate(cifar_bundle, _files(mnist_dir / "test", 500))
    accepted = 1 - _unknown_rate(cifar_bundle, _files(cifar10_dir / "test", 500))
    rule = read_meta(cifar_bundle).rejection
    print(f"CIFAR-10 model, rule {rule['score']}: rejects {rejected:.1%} of MNIST, keeps {accepted:.1%} of CIFAR-10")
    assert rejected >= 0.80 and accepted >= 0.90, (rule["score"], rejected, accepted)
    assert f"`{rule['score']}`" in (cifar_bundle.parent / "model_card.md").read_text()


def test_test_time_adaptation_recovers_accuracy_on_cifar_corruptions(cifar_bundle: Path, cifar10_dir: Path) -> None:
    bundle = load_bundle(cifar_bundle)
    pre = bundle.meta.preprocessing
    samples, _, _ = split_samples(bundle.meta, str(cifar10_dir), "test")
    x, y = D.sample_tensors(samples, pre, 512, seed=1)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))  # a mixed stream, not class-sorted
    x, y = x[order], y[order]
    pixels = (x * torch.tensor(pre.std).view(1, 3, 1, 1) + torch.tensor(pre.mean).view(1, 3, 1, 1)).clamp(0, 1)
    model = R.NormalizedModel(bundle.model, pre.mean, pre.std)
    reports = {m: R.adapted_corruption_accuracy(model, (pixels, y), m, list(R.CORRUPTIONS), (3, 4, 5))
               for m in (None, "bn", "tent")}  # fmt: skip
    base = reports[None]
    figures = {m: (r.clean_accuracy, r.mean_corruption_accuracy) for m, r in reports.items()}
    best = max(("bn", "tent"), key=lambda m: reports[m].mean_corruption_accuracy)
    print(f"clean / mean corruption accuracy (severities 3-5): {figures}")
    assert reports[best].mean_corruption_accuracy >= base.mean_corruption_accuracy + 0.03, figures
    assert reports[best].clean_accuracy >= base.clean_accuracy - 0.01, figures
    assert all(p.grad is None for p in bundle.model.parameters())  # the bundle's model was never touched


def _mnist_tensors(root: Path, split: str, per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for c in range(10):
        for f in sorted((root / split / str(c)).glob("*.png"))[:per_class]:
            xs.append(np.asarray(Image.open(f), dtype=np.float32) / 255)
            ys.append(c)
    return torch.from_numpy(np.stack(xs))[:, None], torch.tensor(ys)


def test_cw_finds_smaller_perturbations_than_pgd_l2_on_an_undefended_mnist_model(mnist_dir: Path) -> None:
    torch.manual_seed(0)
    x, y = _mnist_tensors(mnist_dir, "train", 200)
    xt, yt = _mnist_tensors(mnist_dir, "test", 5)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                          nn.Linear(128, 10))  # fmt: skip
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    for _ in range(5):
        for idx in torch.randperm(len(x)).split(64):
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    assert (model(xt).argmax(1) == yt).float().mean() >= 0.9
    cw = R.cw_l2(model, xt, yt)
    assert cw.success.float().mean() >= 0.95
    assert bool((model(cw.adversarial[cw.success]).argmax(1) != yt[cw.success]).all())
    minimal = torch.full((len(yt),), float("inf"))
    for eps in [0.05 * i for i in range(1, 41)]:  # PGD-L2's smallest successful radius per example
        x_adv = R.pgd(model, xt, yt, eps, norm="l2", steps=20, generator=torch.Generator().manual_seed(0))
        fooled = model(x_adv).argmax(1) != yt
        minimal = torch.where(fooled & minimal.isinf(), torch.tensor(eps), minimal)
    assert float(cw.norms.median()) < float(minimal.median()), (cw.norms.median(), minimal.median())
