"""`imgclf batch` without Ray: rows equal `imgclf predict --json`, unreadable files listed, reruns resume."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from tests.integration._helpers import cli

import imgclf
from imgclf import data as D
from imgclf import engine as E
from imgclf import workflows as W
from imgclf.config import DataConfig
from imgclf.data import expand_inputs
from imgclf.errors import ConfigError
from imgclf.models import create_model


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = D.make_synthetic_dataset(tmp_path_factory.mktemp("train") / "shapes", per_class=20, size=32, seed=1)
    out = tmp_path_factory.mktemp("runs")
    clf = imgclf.fit(src, model="test_cnn", epochs=2, img_size=32, out=str(out), name="run",
                     sets=["data.workers=0", "train.report=false"])  # fmt: skip
    return clf.result_.bundle_dir


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """23 readable images of three classes, plus an empty file and a text file named like images."""
    root = D.make_synthetic_dataset(tmp_path_factory.mktemp("new") / "imgs", per_class=7, size=40, seed=7,
                                    vary_size=True)  # fmt: skip
    D.make_synthetic_dataset(root / "more", classes=("red",), per_class=2, size=32, fmt="jpg", seed=8)
    (root / "empty.png").write_bytes(b"")
    (root / "green" / "notes.jpg").write_text("not an image")
    return root


def _parquet_rows(out: Path) -> dict[str, dict]:
    table = pq.ParquetDataset(str(out)).read()
    rows = table.to_pylist()
    assert len({r["path"] for r in rows}) == len(rows), "a path appears twice"
    return {r["path"]: r for r in rows}


def assert_rows_match_predict(rows: dict[str, dict], predicted: list[dict]) -> None:
    """Same paths, labels and errors as `imgclf predict --json`; scores within 1e-6."""
    assert set(rows) == {p["path"] for p in predicted}
    for p in predicted:
        row = rows[p["path"]]
        assert row["error"] == p.get("error"), p["path"]
        assert row["label"] == p["label"], p["path"]
        if p.get("error"):
            assert row["score"] is None and row["topk"] == [] and row["probabilities"] is None
            continue
        assert abs(row["score"] - p["score"]) <= 1e-6
        assert [t["label"] for t in row["topk"]] == [t["label"] for t in p["topk"]]
        np.testing.assert_allclose([t["score"] for t in row["topk"]], [t["score"] for t in p["topk"]], atol=1e-6)
        assert abs(sum(row["probabilities"]) - 1) < 1e-6


def test_cli_batch_rows_equal_predict_json_and_list_unreadable_files(bundle: Path, images: Path,
                                                                     tmp_path: Path) -> None:  # fmt: skip
    out = tmp_path / "preds.parquet"
    res = cli("batch", str(bundle), str(images), "--out", str(out), "--shard-size", "7", "--batch-size", "3",
              "--workers", "2", "--top-k", "2")  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    assert "25 rows" in res.stdout and "2 file(s) could not be read" in res.stderr
    predicted = json.loads(cli("predict", str(bundle), str(images), "--json", "--top-k", "2").stdout)
    assert len(predicted) == 25
    rows = _parquet_rows(out)
    assert_rows_match_predict(rows, predicted)
    assert rows[str(images / "empty.png")]["error"] == "empty file"
    assert sorted(p.name for p in out.glob("*.parquet")) == [W.part_name(i) for i in range(4)]
    manifest = json.loads((out / W.MANIFEST).read_text())
    assert manifest["complete"] and manifest["images"] == 25 and manifest["errors"] == 2
    # parts hold consecutive runs of the input order
    first = pq.read_table(out / W.part_name(0)).column("path").to_pylist()
    assert first == [p["path"] for p in predicted[:7]]


def test_a_rerun_writes_only_the_missing_parts(bundle: Path, images: Path, tmp_path: Path) -> None:
    out = tmp_path / "preds.parquet"
    full = W.batch_predict(bundle, [images], out, shard_size=5, batch_size=2, workers=0, progress=False)
    assert (full.images, full.errors, full.shards, full.shards_skipped) == (25, 2, 5, 0)
    reference = _parquet_rows(out)
    kept = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}
    (out / W.part_name(1)).unlink()  # as if the run had stopped before writing parts 1 and 3
    (out / W.part_name(3)).write_bytes(b"PAR1 torn")
    again = W.batch_predict(bundle, [images], out, shard_size=5, batch_size=2, workers=0, progress=False)
    assert (again.images, again.shards_skipped, again.new_images) == (25, 3, 10)
    for name, mtime in kept.items():
        if name not in (W.part_name(1), W.part_name(3)):
            assert (out / name).stat().st_mtime_ns == mtime, f"{name} was rewritten"
    assert _parquet_rows(out) == reference


def test_another_job_in_the_same_folder_is_refused(bundle: Path, images: Path, tmp_path: Path) -> None:
    out = tmp_path / "preds.parquet"
    W.batch_predict(bundle, [images], out, shard_size=50, workers=0, progress=False)
    with pytest.raises(ConfigError, match="top_k"):
        W.batch_predict(bundle, [images], out, shard_size=50, workers=0, progress=False,
                        settings=W.RowSettings(top_k=2))  # fmt: skip
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not an imgclf batch output"):
        W.batch_predict(bundle, [images], tmp_path / "other", workers=0, progress=False)


def test_rows_apply_the_bundles_rejection_rule_like_predict(bundle: Path, images: Path) -> None:
    clf = imgclf.load(bundle)
    threshold = float(np.median([p.score for p in clf.predict([images]) if not p.error]))  # half are rejected
    clf.bundle_ = dataclasses.replace(clf.bundle_, meta=dataclasses.replace(
        clf.meta_, rejection={"score": "msp", "threshold": threshold}))  # fmt: skip
    predicted = [p.to_dict() for p in clf.predict([images], top_k=3)]
    assert any(p.get("unknown") for p in predicted) and not all(p.get("unknown", True) for p in predicted)
    paths, logits, errors = clf.predict_logits([images])
    order = expand_inputs([images])
    by_path = dict(zip(paths, logits))
    settings = W.RowSettings(top_k=3)
    rows = W.prediction_rows(clf.meta_, order, np.stack([by_path[p] for p in order if p in by_path]),
                             {i: errors[p] for i, p in enumerate(order) if p in errors}, settings)  # fmt: skip
    assert_rows_match_predict({r["path"]: r for r in rows}, predicted)
    for row, p in zip(rows, predicted):
        assert row["unknown"] == p.get("unknown") and row["ood_score"] == pytest.approx(p.get("ood_score"))


def test_stream_decodes_one_batch_at_a_time(images: Path) -> None:
    files = [str(p) for p in sorted(images.rglob("*")) if p.is_file()]
    calls = []
    model = create_model("test_cnn", 3)
    pre = DataConfig(input_size=32, resize_size=36)

    def transform(image):
        calls.append(1)
        return D.build_eval_transform(pre)(image)

    stream = E.stream_logits(model, files, transform, batch_size=4, workers=0)
    first = next(stream)
    assert len(calls) == first.size == 4  # nothing decoded beyond the batch the model asked for
    chunks = [first, *stream]
    positions = sorted([*np.concatenate([c.indices for c in chunks]).tolist(), *(i for c in chunks for i in c.errors)])
    assert positions == list(range(len(files)))
    assert sum(len(c.errors) for c in chunks) == 2
    assert all(c.logits.shape == (len(c.indices), 3) for c in chunks if len(c.indices))
    assert os.path.basename(files[min(i for c in chunks for i in c.errors)]) in ("empty.png", "notes.jpg")


def test_rows_apply_a_feature_rejection_rule_like_predict(bundle: Path, images: Path, tmp_path: Path) -> None:
    """A kNN rule (statistics in rejection.safetensors): the stream returns the features of its own pass."""
    from imgclf.bundle import save_bundle
    from imgclf.tasks import fit_rejection, fit_rejection_stats

    clf = imgclf.load(bundle)
    _, logits, _ = clf.predict_logits([images])
    feats = clf.embed([images])
    stats = fit_rejection_stats(feats[:10], logits[:10], logits[:10].argmax(1), "knn", k=2)
    rule = fit_rejection(logits, score="knn", features=feats, stats=stats, target_acceptance=0.5)
    knn = save_bundle(tmp_path / "knn", clf.model_, dataclasses.replace(clf.meta_, rejection=rule), stats)
    predicted = [p.to_dict() for p in imgclf.load(knn).predict([images])]
    assert any(p.get("unknown") for p in predicted) and not all(p.get("unknown", True) for p in predicted)
    W.batch_predict(knn, [images], tmp_path / "out", workers=0, progress=False)
    rows = _parquet_rows(tmp_path / "out")
    assert_rows_match_predict(rows, predicted)
    for p in predicted:
        assert rows[p["path"]]["unknown"] == p.get("unknown"), p["path"]
