"""The data audit on real images with planted truth (benchmarks/audit_precision.py, small subsets): planted
copies are found, findings are right, clean test-vs-train splits raise (almost) no false alarm."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from imgclf.evaluation import audit_files

pytestmark = pytest.mark.real

_SPEC = importlib.util.spec_from_file_location(
    "audit_precision", Path(__file__).resolve().parents[2] / "benchmarks" / "audit_precision.py"
)
bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench)


def _check(root: Path, test_split: str, n_train: int, n_test: int, per_kind: int, tmp_path: Path) -> None:
    train = [str(p) for p in bench.subset(root, "train", n_train, 0)]
    test = [str(p) for p in bench.subset(root, test_split, n_test, 1)]
    clean = audit_files({"train": train, test_split: test})
    flagged = bench.flagged_test_images(clean, test_split)
    assert len({f[1] for f in flagged}) <= 0.005 * len(test), flagged  # at most 0.5% of test images
    truth = bench.plant([Path(p) for p in train], tmp_path, per_kind, 2)
    report = audit_files({"train": train, test_split: test + list(truth)})
    scored = bench.score_findings(report, truth)
    assert scored["recall"] >= 0.95, scored["per_kind"]
    assert scored["precision"] >= 0.95, scored["wrong"]
    assert scored["per_kind"]["mirror"]["recall"] >= 0.9  # mirrored copies are reported as their own kind
    leak_lines = [w for w in report.warnings if w.startswith("LEAKAGE")]
    assert any("mirrored" in w for w in leak_lines) and any("cropped" in w for w in leak_lines)


def test_mnist_planted_copies_found_and_look_alike_digits_not_called_leakage(mnist_dir: Path, tmp_path: Path) -> None:
    _check(mnist_dir, "test", 1000, 300, 8, tmp_path)


def test_cifar10_planted_copies_found_without_false_alarms(cifar10_dir: Path, tmp_path: Path) -> None:
    _check(cifar10_dir, "test", 1000, 300, 8, tmp_path)


def test_hymenoptera_planted_copies_of_large_photos_found(hymenoptera_dir: Path, tmp_path: Path) -> None:
    _check(hymenoptera_dir, "val", 245, 80, 8, tmp_path)


@pytest.mark.slow
def test_mnist_planted_label_flips_ranked_first_with_out_of_fold_probabilities(mnist_dir: Path, tmp_path: Path) -> None:
    import imgclf
    from imgclf.bundle import load_bundle
    from imgclf.evaluation import audit_labels

    data = tmp_path / "data"
    flipped = bench.noisy_tree(mnist_dir, data, 1200, 300, rate=0.05, shape="confusion", seed=0)
    clf = imgclf.fit(data, model="lenet5", epochs=4, batch_size=64, out=str(tmp_path / "runs"), name="noisy",
                     sets=["data.augment=none", "optim.lr=2e-3", "train.label_smoothing=0.0"])  # fmt: skip
    audit = audit_labels(load_bundle(clf.result_.bundle_dir), str(data))
    assert audit.n_images == 1500 and audit.splits == ("train", "val", "test")
    assert "5-fold cross-validated" in audit.method and "never saw its label" in audit.method
    assert bench.precision_at_k(list(audit.issues.paths), flipped) >= 0.6
