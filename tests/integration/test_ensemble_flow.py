"""Ensembles on generated images: three members -> one bundle that predict, evaluate and ONNX export use."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tests.integration._helpers import cli

import imgclf
from imgclf import data as D
from imgclf.api import uncertainty
from imgclf.bundle import load_bundle, read_meta
from imgclf.errors import ConfigError
from imgclf.models import EnsembleNet
from imgclf.workflows import DISAGREEMENT_FILE, build_ensemble


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    tmp = tmp_path_factory.mktemp("ens")
    src = D.make_synthetic_dataset(tmp / "imgs", per_class=40, size=32, layout="flat", seed=3)
    bundles = []
    for seed in (0, 1, 2):  # batch 64 (2 steps an epoch, not auto's 16): weak members that disagree on noise
        clf = imgclf.fit(src, model="test_cnn", epochs=2, img_size=32, seed=seed, out=str(tmp / "runs"),
                         name=f"m{seed}", sets=["data.workers=0", "optim.lr=3e-3", "train.report=false",
                                                "data.batch_size=64"])  # fmt: skip
        bundles.append(clf.result_.bundle_dir)
    return src, bundles


def test_ensemble_bundle_averages_member_probabilities(members: tuple[Path, list[Path]], tmp_path: Path) -> None:
    src, bundles = members
    res = build_ensemble(bundles, tmp_path / "ens")
    ens = load_bundle(res.bundle_dir)
    assert isinstance(ens.model, EnsembleNet) and len(ens.model.members) == 3
    imgs = sorted((Path(src)).rglob("*.png"))[:6]
    probs = [imgclf.load(b).predict_proba(imgs) for b in bundles]
    clf = imgclf.load(res.bundle_dir)
    raw = clf.predict(imgs, raw=True)
    mean = np.mean(probs, axis=0)  # (N, C)
    got = np.array([[dict(p.topk)[c] for c in clf.classes] for p in raw])
    np.testing.assert_allclose(got, mean, atol=1e-5)
    assert set(res.rows) == {"ensemble", *(f"member{i}:m{i}" for i in range(3))}
    csv_rows = (res.bundle_dir / DISAGREEMENT_FILE).read_text().splitlines()
    assert csv_rows[0] == "path,label,predicted,score,disagreement" and len(csv_rows) == res.ensemble["n"] + 1
    mi = uncertainty(clf, imgs)
    assert mi.shape == (6,) and (mi >= 0).all()
    ev = clf.evaluate(src)
    assert ev.n > 0 and 0 <= ev.accuracy <= 1


def test_ensemble_exports_one_onnx_graph_with_parity(members: tuple[Path, list[Path]], tmp_path: Path) -> None:
    src, bundles = members
    res = build_ensemble(bundles[:2], tmp_path / "ens2")
    export = imgclf.load(res.bundle_dir).export(data=str(src))
    assert export.parity.passed, export.parity.to_dict()
    onnx_clf = imgclf.load(res.bundle_dir / "model.onnx")
    imgs = sorted(Path(src).rglob("*.png"))[:4]
    a = imgclf.load(res.bundle_dir).predict_proba(imgs)
    b = onnx_clf.predict_proba(imgs)
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_cli_ensemble_json_and_mismatched_classes(members: tuple[Path, list[Path]], tmp_path: Path) -> None:
    src, bundles = members
    r = cli("ensemble", *map(str, bundles), "--out", str(tmp_path / "e"), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["rows"]["ensemble"]["n"] > 0 and read_meta(tmp_path / "e").architecture == "ensemble"
    r = cli("ensemble", str(bundles[0]), "--out", str(tmp_path / "e1"))
    assert r.returncode == 2 and "at least 2" in r.stderr


def test_members_with_other_classes_are_refused(members: tuple[Path, list[Path]], tmp_path: Path) -> None:
    import dataclasses

    from imgclf.bundle import save_bundle

    _, bundles = members
    other = load_bundle(bundles[1])
    meta = dataclasses.replace(other.meta, classes=tuple(reversed(other.meta.classes)))
    save_bundle(tmp_path / "other", other.model, meta)
    with pytest.raises(ConfigError, match="same classes"):
        build_ensemble([bundles[0], tmp_path / "other"], tmp_path / "x")


def test_cli_predict_and_evaluate_with_tta_and_mc_dropout(members: tuple[Path, list[Path]]) -> None:
    src, bundles = members
    imgs = [str(p) for p in sorted(Path(src).rglob("*.png"))[:3]]
    r = cli("predict", str(bundles[0]), *imgs, "--tta", "flip+crop", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert len(rows) == 3 and all(row["uncertainty"] >= 0 for row in rows)
    hedged_top = [row["topk"][0]["score"] for row in rows]
    plain = json.loads(cli("predict", str(bundles[0]), *imgs, "--json").stdout)
    assert "uncertainty" not in plain[0] and hedged_top != [row["topk"][0]["score"] for row in plain]
    r = cli("predict", str(bundles[0]), *imgs, "--mc-dropout", "5")
    assert r.returncode == 2 and "model.drop_rate" in r.stderr  # test_cnn was trained without dropout
    r = cli("evaluate", str(bundles[0]), str(src), "--tta", "flip", "--json", "--resamples", "0")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["n"] > 0


def _noise_images(folder: Path, n: int = 16) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = [folder / f"noise{i}.png" for i in range(n)]
    for p in paths:
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(p)
    return paths


def test_disagreement_is_the_stored_rule_and_rejects_images_the_members_disagree_on(
    members: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    src, bundles = members
    res = build_ensemble(bundles, tmp_path / "ens", rule="disagreement")
    clf = imgclf.load(res.bundle_dir)
    assert clf.meta_.rejection["score"] == "disagreement" and (res.bundle_dir / "rejection.safetensors").is_file()
    inside = clf.predict(sorted(Path(src).rglob("*.png")))
    noise = _noise_images(tmp_path / "noise")
    outside = clf.predict(noise)
    assert np.mean([p.unknown for p in inside]) <= 0.15  # the threshold accepts 95% of val images
    assert np.mean([p.unknown for p in outside]) >= 0.9
    assert "disagreement score" in next(p for p in outside if p.unknown).reason
    # the score is minus the members' mutual information of the same images, as `uncertainty` reports it
    mi = uncertainty(clf, noise[:4])
    np.testing.assert_allclose([-p.ood_score for p in outside[:4]], mi, rtol=1e-4, atol=1e-7)
    r = cli("predict", str(res.bundle_dir), *map(str, noise[:2]), "--json")
    assert r.returncode == 0 and all(row["unknown"] for row in json.loads(r.stdout)), r.stderr


def test_robustness_stores_the_disagreement_rule_only_for_ensembles(
    members: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    from imgclf.errors import ModelError
    from imgclf.robustness import robustness

    src, bundles = members
    res = build_ensemble(bundles, tmp_path / "ens")  # stores msp
    quick = {"attacks": (), "corruptions": False, "max_images": 32, "fit_images": 64}
    rob = robustness(res.bundle_dir, str(src), ood=str(_noise_images(tmp_path / "noise")[0].parent),
                     rule="disagreement", **quick)  # fmt: skip
    assert "disagreement" in rob.ood and rob.ood["disagreement"].auroc > 0.9
    clf = imgclf.load(res.bundle_dir)
    assert clf.meta_.rejection["score"] == "disagreement"
    assert all(p.unknown for p in clf.predict(_noise_images(tmp_path / "more", 4)))
    with pytest.raises(ModelError, match="needs an ensemble"):
        robustness(bundles[0], str(src), rule="disagreement", store=False, **quick)
