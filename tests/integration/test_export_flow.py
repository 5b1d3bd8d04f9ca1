"""Issue 4 flows: export with parity, int8 quantization, engines in predict/evaluate, benchmark table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tests.integration._helpers import cli

import imgclf
from imgclf import data as D
from imgclf.bundle import read_meta


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, imgclf.Classifier]:
    tmp = tmp_path_factory.mktemp("exp")
    src = D.make_synthetic_dataset(tmp / "imgs", per_class=60, size=32, layout="flat", seed=4)
    clf = imgclf.fit(src, model="resnet20_cifar", epochs=2, img_size=32, out=str(tmp / "runs"), name="r",
                     sets=["data.workers=0", "optim.lr=3e-3", "data.augment=light", "train.report=false"])  # fmt: skip
    return src, clf


def test_a_stale_onnx_export_is_refused_not_served(tmp_path: Path) -> None:
    """model.onnx exported from earlier weights must not be served under the new weights' version."""
    import torch

    from imgclf.bundle import BundleMeta, load_bundle, save_bundle
    from imgclf.config import DataConfig
    from imgclf.errors import BundleError
    from imgclf.export import export_onnx
    from imgclf.models import create_model

    meta = BundleMeta("test_cnn", ("a", "b"), DataConfig(input_size=16, resize_size=16))
    torch.manual_seed(0)
    bundle = save_bundle(tmp_path / "bundle", create_model("test_cnn", 2), meta)
    old = load_bundle(bundle)
    export_onnx(old.model, bundle / "model.onnx", input_size=16,
                metadata={"imgclf_weights_sha256": old.meta.weights_sha256}, parity_images=torch.randn(2, 3, 16, 16))
    D.make_synthetic_dataset(tmp_path / "d", per_class=1, size=16, layout="flat")
    image = next((tmp_path / "d").rglob("*.png"))
    assert imgclf.load(bundle, engine="onnxruntime").predict([str(image)])[0].label in ("a", "b")  # fresh: fine
    torch.manual_seed(1)
    save_bundle(bundle, create_model("test_cnn", 2), meta)  # retrained weights, the old export left beside them
    for path, engine in ((bundle, "onnxruntime"), (bundle / "model.onnx", "torch")):
        with pytest.raises(BundleError, match="model.onnx is stale.*Re-export it: imgclf export"):
            imgclf.load(path, engine=engine)
    assert imgclf.load(bundle).predict([str(image)])[0].label in ("a", "b")  # the torch engine is unaffected


@pytest.mark.slow
def test_export_quantize_and_use_every_engine(trained) -> None:
    src, clf = trained
    bundle = clf.result_.bundle_dir
    res = cli("export", str(bundle), "--format", "onnx", "--quantize", "int8")
    assert res.returncode == 0, res.stderr
    assert (bundle / "model.onnx").is_file() and (bundle / "model.int8.onnx").is_file()
    exports = read_meta(bundle).extra["exports"]
    assert exports["onnx"]["parity"]["passed"] and exports["onnx"]["parity"]["max_abs_logit_diff"] < 1e-3
    q = exports["int8"]
    assert q["accuracy_int8"] >= q["accuracy_fp32"] - 0.1 and q["throughput_int8"] > 0

    images = sorted(str(p) for p in (src / "green").iterdir())[:8]
    eager = imgclf.load(bundle).predict_logits(images)[1]
    for engine in ("torch-fast", "onnxruntime"):
        logits = imgclf.load(bundle, engine=engine).predict_logits(images)[1]
        tol = 0.15 if engine == "torch-fast" else 1e-3  # bf16 where the CPU supports it
        np.testing.assert_allclose(logits, eager, atol=tol * max(1.0, float(np.abs(eager).max())))
    preds = json.loads(cli("predict", str(bundle / "model.onnx"), *images, "--json").stdout)
    assert [p["label"] for p in preds] == [p.label for p in imgclf.load(bundle).predict(images)]
    ev = cli("evaluate", str(bundle), str(src), "--engine", "onnxruntime", "--json", "--resamples", "50")
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["metrics"]["accuracy"] == pytest.approx(clf.result_.metrics["test"]["acc"])


@pytest.mark.slow
def test_benchmark_table_has_every_engine(trained) -> None:
    src, clf = trained
    res = cli("benchmark", str(clf.result_.bundle_dir), str(src), "--json", "--repeats", "3")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    engines = {(r["engine"], r["precision"]) for r in out["rows"]}
    assert ("torch", "fp32") in engines and any(e == "torch-fast" for e, _ in engines)
    for r in out["rows"]:
        p50, p90, p99 = r["latency_ms"]
        assert 0 < p50 <= p90 <= p99 and r["throughput_ips"] > 0
        # efficiency = achieved GFLOP/s over the matmul peak measured in the same run
        assert r["efficiency"] == pytest.approx(out["gflops_per_image"] * r["throughput_ips"] / out["peak_gflops"])
        assert r["accuracy"] is not None
    assert out["parameters"] > 100_000 and out["gflops_per_image"] > 0 and out["peak_gflops"] > 0


def test_broken_export_is_caught(trained, tmp_path: Path) -> None:
    _, clf = trained
    res = cli("export", str(clf.result_.bundle_dir), "--format", "onnx", "--atol", "1e-12", "--out", str(tmp_path))
    assert res.returncode == 1 and "does not match the PyTorch model" in res.stderr and "logit difference" in res.stderr
    assert not (tmp_path / "model.onnx").exists()
