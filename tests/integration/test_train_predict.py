"""Whole flows on generated images: train -> run dir -> bundle -> predict, through the API and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import imgclf
from imgclf import data as D
from imgclf import engine as E
from imgclf.bundle import load_bundle, read_meta
from imgclf.errors import BundleError, DataError, NotFittedError
from imgclf.metrics import apply_temperature


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> imgclf.Classifier:
    root = tmp_path_factory.mktemp("data")
    src = D.make_synthetic_dataset(root / "shapes", per_class=40, size=32, layout="flat", seed=1)
    out = tmp_path_factory.mktemp("runs")
    return imgclf.fit(src, model="test_cnn", epochs=4, img_size=32, out=str(out), name="run",
                      sets=["data.workers=0", "optim.lr=3e-3", "data.augment=light"])  # fmt: skip


def test_run_directory_has_everything(trained: imgclf.Classifier) -> None:
    run = trained.result_.run_dir
    for name in ("config.yaml", "env.json", "metrics.jsonl", "metrics.csv", "split.json",
                 "checkpoints/last.safetensors", "checkpoints/best.safetensors",
                 "bundle/model.safetensors", "bundle/imgclf.json", "report.html", "model_card.md",
                 "plots/confusion_matrix.png"):  # fmt: skip
        assert (run / name).exists(), name
    assert any((run / "tensorboard").iterdir())
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2, 3, 4]
    split = json.loads((run / "split.json").read_text())
    assert "stratified" in json.dumps(split)


def test_bundle_metadata_and_accuracy(trained: imgclf.Classifier) -> None:
    meta = read_meta(trained.result_.bundle_dir)
    assert meta.classes == ("blue", "green", "red")
    assert meta.preprocessing.input_size == 32
    val = meta.metrics["val"]
    if val["acc"] == 1.0 or val["n"] < 30:  # too small or perfectly classified: no temperature is supported
        assert meta.temperature is None
    else:
        assert meta.temperature is not None and meta.temperature > 0
    assert meta.versions["torch"] == torch.__version__
    assert len(meta.weights_sha256) == 64
    assert meta.metrics["test"]["acc"] >= 0.8  # easy synthetic classes
    ref = meta.extra["monitor"]  # drift reference for `imgclf monitor` and the server
    assert sum(ref["class_counts"]) == meta.metrics["test"]["n"]


def test_predict_folder_and_bad_file(trained: imgclf.Classifier, tmp_path: Path) -> None:
    root = D.make_synthetic_dataset(tmp_path / "new", per_class=3, size=40, layout="flat", seed=7)
    (root / "red" / "broken.png").write_bytes(b"not an image")
    preds = trained.predict([str(root)], top_k=2)
    bad = [p for p in preds if p.error]
    assert len(bad) == 1 and bad[0].path.endswith("broken.png")
    good = [p for p in preds if not p.error]
    assert len(good) == 9
    paths, logits, _ = trained.predict_logits([p.path for p in good])
    probs = apply_temperature(logits, trained.meta_.temperature or 1.0)  # (9, 3) calibrated
    for p, row in zip(good, probs[[paths.index(q.path) for q in good]], strict=True):
        top2 = np.sort(row)[::-1][:2]
        assert [label for label, _ in p.topk] == [trained.classes[i] for i in np.argsort(-row)[:2]]
        np.testing.assert_allclose([s for _, s in p.topk], top2, rtol=1e-5, atol=1e-6)  # the two largest, in order
        assert p.label in (p.topk[0][0], "unknown") and p.score == pytest.approx(top2[0], abs=1e-6)
        assert sum(s for _, s in p.topk) < 1.0  # the third class keeps some probability
    hits = sum(p.label == Path(p.path).parent.name for p in good)
    assert hits >= 7
    d = good[0].to_dict()
    # the answer schema shared by CLI, API and REST: the rejection score is always reported with the answer
    assert set(d) == {"path", "label", "score", "topk", "unknown", "ood_score"}
    assert set(d["topk"][0]) == {"label", "score"}


def test_predict_and_evaluation_pass_give_same_logits(trained: imgclf.Classifier) -> None:
    bundle = load_bundle(trained.result_.bundle_dir)
    source = trained.result_.config.data.source
    splits = D.load_source(source, seed=0)  # the same seeded split training used
    samples = splits.test
    loader = D.make_loader(D.IndexedDataset(samples, D.build_eval_transform(bundle.meta.preprocessing)),
                           D.ResumableSampler(samples.labels, seed=0, shuffle=False), 8, workers=0)  # fmt: skip
    eval_out = E.predict_logits(bundle.model, loader)
    paths = [samples.describe(int(i)) for i in eval_out.indices]
    got_paths, logits, errors = trained.predict_logits(paths)
    assert got_paths == paths and not errors
    np.testing.assert_allclose(logits, eval_out.logits, rtol=1e-5, atol=1e-5)


def test_tampered_weights_are_refused(trained: imgclf.Classifier, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(trained.result_.bundle_dir, copy)
    raw = bytearray((copy / "model.safetensors").read_bytes())
    raw[-1] ^= 0xFF
    (copy / "model.safetensors").write_bytes(bytes(raw))
    with pytest.raises(BundleError, match="sha256"):
        imgclf.load(copy)
    with pytest.raises(BundleError, match="imgclf.json is missing"):
        imgclf.load(tmp_path)


def test_unfitted_and_empty_inputs() -> None:
    with pytest.raises(NotFittedError, match=r"\.fit\(data\)"):
        imgclf.Classifier().predict(["x.png"])


def test_missing_input_is_named(trained: imgclf.Classifier) -> None:
    with pytest.raises(DataError, match="nope.png"):
        trained.predict(["nope.png"])


def test_predict_table_keeps_file_names_on_a_narrow_terminal_and_is_whole_when_piped(
        trained: imgclf.Classifier, tmp_path: Path) -> None:  # fmt: skip
    """#18: paths were cut to their first 20 characters (file names lost) and pipes were cut to 80 columns."""
    import os
    import subprocess
    import sys

    deep = tmp_path / "a-rather-long-folder-name" / "and-another-level-of-folders" / "photos"
    D.make_synthetic_dataset(deep, per_class=1, size=32, layout="flat", seed=3)
    images = sorted(str(p) for p in deep.rglob("*.png"))
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}

    def table(columns: str | None) -> str:
        run = subprocess.run([sys.executable, "-m", "imgclf", "predict", str(trained.result_.bundle_dir), *images],
                             capture_output=True, text=True, timeout=300,
                             env=env if columns is None else {**env, "COLUMNS": columns})  # fmt: skip
        assert run.returncode == 0, run.stderr
        return run.stdout

    narrow = table("70")
    assert max(len(line) for line in narrow.splitlines()) <= 70, narrow
    for image in images:  # each row names its file, cut from the left
        assert any("…" in line and f"/{Path(image).name} " in line for line in narrow.splitlines()), narrow
    piped = table(None)
    assert all(any(image in line for line in piped.splitlines()) for image in images), piped  # whole, one line
