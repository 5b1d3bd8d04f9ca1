"""Real data: the shared MNIST and CIFAR-10 archives (extracted once into a cache)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import imgclf
from imgclf.bundle import load_bundle, split_samples
from imgclf.data import load_source
from imgclf.engine import run_inference
from imgclf.evaluation import analyse
from imgclf.metrics import fit_temperature
from imgclf.robustness import stress_test

pytestmark = [pytest.mark.real, pytest.mark.slow]


@pytest.fixture(scope="module")
def mnist_model(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> imgclf.Classifier:
    out = tmp_path_factory.mktemp("mnist")
    return imgclf.fit(mnist_dir, model="lenet5", epochs=3, batch_size=128, out=str(out), name="mnist",
                      sets=["data.augment=none", "optim.lr=2e-3", "train.label_smoothing=0.0"])  # fmt: skip


def test_mnist_reaches_98_percent_on_full_test_set_with_report(mnist_model: imgclf.Classifier) -> None:
    test = mnist_model.result_.metrics["test"]
    assert test["n"] == 10_000
    assert test["acc"] >= 0.98, test
    run = mnist_model.result_.run_dir
    html = (run / "report.html").read_text()
    assert 'id="metrics"' in html and 'id="calibration"' in html and "data:image/png;base64," in html
    assert (run / "model_card.md").is_file() and (run / "plots" / "confusion_matrix.png").is_file()


def test_mnist_model_rejects_cifar_images(mnist_model: imgclf.Classifier, mnist_dir: Path, cifar10_dir: Path) -> None:
    bundle = load_bundle(mnist_model.result_.bundle_dir)
    res = stress_test(bundle, str(mnist_dir), ood=cifar10_dir / "test", attacks=(), corruptions=False,
                      max_images=300)  # fmt: skip
    best = res.rejection["score"]
    assert res.ood[best].auroc >= 0.9, {k: v.auroc for k, v in res.ood.items()}


@pytest.fixture(scope="module")
def cifar_overconfident(cifar10_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> imgclf.Classifier:
    """A deliberately overconfident CIFAR-10 model: small subset, long training, no label smoothing or EMA."""
    out = tmp_path_factory.mktemp("cifar")
    return imgclf.fit(cifar10_dir, model="lenet5", epochs=25, batch_size=64, out=str(out), name="cifar",
                      sets=["data.max_per_class=200", "data.augment=none", "train.label_smoothing=0.0",
                            "train.ema=false", "train.patience=100", "optim.lr=2e-3",
                            "train.calibrate=false"])  # fmt: skip


def test_temperature_scaling_halves_held_out_ece(cifar_overconfident: imgclf.Classifier, cifar10_dir: Path) -> None:
    assert (cifar_overconfident.result_.run_dir / "report.html").is_file()  # train → evaluate → report on CIFAR
    bundle = load_bundle(cifar_overconfident.result_.bundle_dir)
    splits = load_source(str(cifar10_dir), max_per_class=200, seed=0)
    val = run_inference(bundle.model, splits.val, bundle.meta.preprocessing)
    test = run_inference(bundle.model, splits.test, bundle.meta.preprocessing)
    t = fit_temperature(val.logits, val.labels)
    raw = analyse(test.logits, test.labels, bundle.task, temperature=1.0, n_resamples=0)
    cal = analyse(test.logits, test.labels, bundle.task, temperature=t, n_resamples=0)
    assert t > 1.2  # overconfident: probabilities get softened
    assert cal.calibration.ece <= raw.calibration.ece / 2, (raw.calibration.ece, cal.calibration.ece)
    assert cal.metrics.accuracy == raw.metrics.accuracy
    assert np.array_equal(raw.probs.argmax(1), cal.probs.argmax(1))


def test_pgd_8_255_drives_cifar_model_to_5_percent(cifar_overconfident: imgclf.Classifier, cifar10_dir: Path) -> None:
    bundle = load_bundle(cifar_overconfident.result_.bundle_dir)
    res = stress_test(bundle, str(cifar10_dir), attacks=("fgsm", "pgd"), corruptions=False, max_images=200,
                      epsilons=(0.0, 8 / 255))  # fmt: skip
    pgd = res.adversarial["pgd-linf"].accuracies
    assert pgd[0] > 0.3  # the model learned something
    assert pgd[1] <= 0.05, pgd
    assert pgd[1] <= res.adversarial["fgsm-linf"].accuracies[1]


def test_int8_export_agrees_on_real_digits(mnist_model: imgclf.Classifier, mnist_dir: Path) -> None:
    from imgclf.data import sample_tensors
    from imgclf.export import export_bundle, load_engine

    bundle = mnist_model.result_.bundle_dir
    res = export_bundle(bundle, quantize="int8")
    assert res.parity.passed and res.parity.top1_agreement == 1.0
    q = res.quantization
    assert q["accuracy_int8"] >= q["accuracy_fp32"] - 0.02, q
    loaded = load_bundle(bundle)
    samples, _, _ = split_samples(loaded.meta, str(mnist_dir), "test")
    x, _ = sample_tensors(samples, loaded.meta.preprocessing, 500, seed=1)
    fp32 = load_engine("onnxruntime", onnx_path=res.onnx).predict_logits(x).argmax(1)
    int8 = load_engine("onnxruntime", onnx_path=res.int8).predict_logits(x).argmax(1)
    assert (fp32 == int8).mean() >= 0.97


def test_distillation_beats_the_no_teacher_student_over_3_seeds(mnist_model: imgclf.Classifier, mnist_dir: Path,
                                                                tmp_path: Path) -> None:  # fmt: skip
    """A student that sees 30 images per class learns more from the full-data teacher's soft targets than the
    same student trained alone, seed after seed (the gain is not one lucky draw)."""
    from imgclf.api import Classifier
    from imgclf.workflows import distill

    gains = []
    for seed in range(3):
        cfg = Classifier(epochs=20, out=str(tmp_path), name=f"seed{seed}", seed=seed, sets=[
            "data.max_per_class=30", "data.augment=none", "train.report=false", "optim.lr=3e-3",
            "train.patience=100"]).resolved_config(str(mnist_dir))  # fmt: skip
        acc = distill(mnist_model.result_.bundle_dir, "lenet5", str(mnist_dir), cfg=cfg).accuracies
        assert acc["teacher"] > acc["student (distilled)"], acc
        gains.append(acc["student (distilled)"] - acc["student (no teacher)"])
    print(f"distillation gain per seed: {[f'{g:+.3f}' for g in gains]}")
    assert all(g > 0 for g in gains), gains  # measured: +0.008, +0.016, +0.006 on 300 test digits
    assert np.mean(gains) >= 0.005, gains


def test_saliency_passes_cascading_randomisation_on_the_mnist_model(mnist_model: imgclf.Classifier,
                                                                   mnist_dir: Path) -> None:  # fmt: skip
    """Adebayo's sanity check on a real model: as the layers are re-initialised from the output side down, the
    maps of the trained MNIST model stop resembling the randomised model's; no map is empty."""
    from imgclf.data import sample_tensors
    from imgclf.explain import cascading_randomization

    bundle = load_bundle(mnist_model.result_.bundle_dir)
    samples, _, _ = split_samples(bundle.meta, str(mnist_dir), "test")
    x, _ = sample_tensors(samples, bundle.meta.preprocessing, 16, seed=0)
    cam = cascading_randomization(bundle.model, x, "gradcam")
    print("gradcam", [f"{layer}: {c:.2f}" for layer, c in zip(cam.layers, cam.correlations)])
    assert cam.flat_maps == 0 and cam.passed, cam.to_dict()  # measured: 0.15 (head only) ... -0.01 (all)
    assert len(cam.layers) == 5 and cam.correlations[-1] < cam.correlations[0]
    # SmoothGrad on MNIST follows the digit strokes whatever the weights (Adebayo et al. saw the same input-
    # structure effect): the check must say so rather than pass it (measured: 0.82 with every layer random).
    grad = cascading_randomization(bundle.model, x, "smoothgrad", samples=8)
    print("smoothgrad", [f"{layer}: {c:.2f}" for layer, c in zip(grad.layers, grad.correlations)])
    assert not grad.passed and grad.correlation > 0.5
