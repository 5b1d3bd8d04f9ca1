"""Issue 5 flows on generated images: robustness CLI, rejection in predict, adversarial training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.integration._helpers import cli

import imgclf
from imgclf import data as D
from imgclf.bundle import read_meta


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, imgclf.Classifier, Path]:
    tmp = tmp_path_factory.mktemp("rob")
    src = D.make_synthetic_dataset(tmp / "imgs", per_class=40, size=32, layout="flat", seed=2)
    clf = imgclf.fit(src, model="test_cnn", epochs=5, img_size=32, out=str(tmp / "runs"), name="r",
                     sets=["data.workers=0", "optim.lr=3e-3", "data.augment=light", "train.report=false"])  # fmt: skip
    ood = tmp / "ood"
    ood.mkdir()
    rng = np.random.default_rng(0)
    for i in range(20):  # grey-level textures unlike the coloured training shapes
        Image.fromarray((rng.random((32, 32)) * 80 + 100).astype(np.uint8)).convert("RGB").save(ood / f"{i}.png")
    return src, clf, ood


@pytest.fixture(scope="module")
def robustness_run(trained, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """`imgclf robustness` on the trained bundle once (it stores the rejection rule in the bundle)."""
    src, clf, ood = trained
    out = tmp_path_factory.mktemp("rob") / "rob"
    res = cli("robustness", str(clf.result_.bundle_dir), str(src), "--ood", str(ood), "--out", str(out),
              "--max-images", "24", "--json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout), out


@pytest.mark.slow
def test_robustness_cli_writes_results_and_stores_rejection(trained, robustness_run) -> None:
    src, clf, ood = trained
    r, out = robustness_run
    pgd = r["adversarial"]["pgd-linf"]["accuracies"]
    assert pgd[0] == pytest.approx(r["clean_accuracy"])  # eps = 0 is clean accuracy
    assert all(a >= b for a, b in zip(pgd, pgd[1:]))  # falls with eps
    assert all(p <= f + 1e-9 for p, f in zip(pgd, r["adversarial"]["fgsm-linf"]["accuracies"]))  # PGD >= FGSM
    corr = r["corruptions"]["accuracies"]
    assert len(corr) == 15 and all(len(v) == 5 for v in corr.values())
    assert set(r["ood"]) == {"msp", "max_logit", "energy", "mahalanobis", "knn", "vim"}
    assert max(v["auroc"] for v in r["ood"].values()) >= 0.9, r["ood"]  # grey textures are clearly outliers
    cw = r["adversarial"]["cw-l2"]
    assert cw["accuracies"][0] == pytest.approx(r["clean_accuracy"]) and cw["options"]["median_l2"] > 0
    for name in ("robust_accuracy.png", "robust_accuracy_l2.png", "corruptions.png", "ood_scores.png",
                 "robustness.json"):  # fmt: skip
        assert (out / name).is_file(), name
    meta = read_meta(clf.result_.bundle_dir)
    best = max(r["ood"], key=lambda k: r["ood"][k]["auroc"])
    assert meta.rejection["score"] == best and "highest AUROC" in meta.rejection["reason"]  # --ood: by AUROC
    assert meta.rejection["target_acceptance"] == 0.95
    if meta.rejection["score"] in ("mahalanobis", "knn", "vim"):
        assert (clf.result_.bundle_dir / meta.rejection["file"]).is_file()

    loaded = imgclf.load(clf.result_.bundle_dir)
    in_dist = loaded.predict([str(src / "red")])
    assert np.mean([p.label != "unknown" for p in in_dist]) >= 0.8
    raw = loaded.predict([str(ood)], reject=False)
    assert all(p.label != "unknown" and p.ood_score is not None for p in raw)
    answered = loaded.predict([str(ood)])
    for p, q in zip(answered, raw, strict=True):  # predict applies exactly the stored rule
        assert (p.label == "unknown") == (q.ood_score < meta.rejection["threshold"]), (p, meta.rejection)
    cli_raw = cli("predict", str(clf.result_.bundle_dir), str(ood), "--no-reject", "--json")
    assert all(p["label"] != "unknown" for p in json.loads(cli_raw.stdout))


@pytest.mark.slow
def test_predict_answers_unknown_for_most_clear_outliers(trained, robustness_run) -> None:
    """Issue 10: with a feature rule stored (Mahalanobis separates these textures, AUROC 1.0, where MSP had 0.67)
    predict answers ``unknown`` for the outliers, with the reason, and keeps the training-like images."""
    src, clf, ood = trained
    loaded = imgclf.load(clf.result_.bundle_dir)
    strange = loaded.predict([str(ood)])
    assert np.mean([p.label == "unknown" for p in strange]) >= 0.9, [p.ood_score for p in strange]
    assert all("below the bundle's threshold" in p.reason for p in strange if p.label == "unknown")
    assert np.mean([p.label != "unknown" for p in loaded.predict([str(src / "red")])]) >= 0.8


@pytest.mark.slow
def test_adversarial_training_beats_standard_training_on_robust_accuracy(trained, tmp_path: Path) -> None:
    """Same data, model, epochs and learning rate as the fixture's standard model, plus PGD training at the
    smallest budget of a grid that breaks the standard model (PGD accuracy <= 0.6 on fresh images); both are then
    attacked at that budget. These colour shapes are easy: with the adaptive defaults the standard model keeps 100%
    at 16/255 (it kept 67% before), so a fixed budget measured nothing; measured here: 48/255, standard 0.17,
    adversarial 0.77. Issue 10: this failed while the best checkpoint was the first epoch to reach 100% on the 12
    validation images; accuracy ties now go to the lower validation loss."""
    from imgclf.bundle import load_bundle
    from imgclf.robustness import stress_test

    src, standard, _ = trained
    fresh = D.make_synthetic_dataset(tmp_path / "fresh", per_class=20, size=32, layout="flat", seed=21)

    def pgd(clf: imgclf.Classifier, epsilons: tuple[float, ...]) -> tuple[float, ...]:
        res = stress_test(load_bundle(clf.result_.bundle_dir), str(fresh), split="all", attacks=("pgd",),
                          corruptions=False, epsilons=epsilons, max_images=60)  # fmt: skip
        return res.adversarial["pgd-linf"].accuracies

    grid = tuple(k / 255 for k in (0, 16, 24, 32, 48, 64))
    swept = pgd(standard, grid)
    assert swept[0] >= 0.9 and swept[-1] <= 0.6, swept  # the attack works: clean images right, the largest broken
    eps = next(e for e, a in zip(grid, swept, strict=True) if a <= 0.6)
    sets = ["data.workers=0", "optim.lr=3e-3", "data.augment=light", "train.report=false", "train.adv_train=pgd",
            "train.adv_steps=2", f"train.adv_eps={eps}"]  # fmt: skip
    adv = imgclf.fit(src, model="test_cnn", epochs=5, img_size=32, out=str(tmp_path), name="adv", sets=sets)
    assert adv.result_.config.train.adv_eps == pytest.approx(eps)
    lines = [json.loads(x) for x in (tmp_path / "adv" / "metrics.jsonl").read_text().splitlines()]
    assert all(0 <= m["val_robust_acc"] <= 1 for m in lines)
    robust = {"standard": swept[grid.index(eps)], "adversarial": pgd(adv, (0.0, eps))}
    print(f"PGD at {eps * 255:.0f}/255: {robust}")
    assert robust["adversarial"][1] >= robust["standard"] + 0.2, robust
    assert robust["adversarial"][0] >= 0.7, robust  # still a usable classifier on clean images
    res = cli("train", "--help")
    assert "--adv-train" in res.stdout and "--adv-eps" in res.stdout


@pytest.mark.slow
def test_robustness_on_a_vit_bundle(trained, tmp_path: Path) -> None:
    from imgclf.bundle import load_bundle
    from imgclf.robustness import stress_test

    src, _, _ = trained
    vit = imgclf.fit(src, model="test_vit", epochs=2, img_size=32, out=str(tmp_path), name="vit",
                     sets=["data.workers=0", "train.report=false"])  # fmt: skip
    res = stress_test(load_bundle(vit.result_.bundle_dir), str(src), max_images=16, corruptions=True,
                      corruption_images=8, epsilons=(0.0, 8 / 255), attacks=("fgsm", "pgd"))  # fmt: skip
    assert res.adversarial["pgd-linf"].accuracies[0] == pytest.approx(res.clean_accuracy)
    assert res.corruptions is not None and set(res.ood) >= {"msp", "mahalanobis", "knn"}
    assert res.rejection is not None and np.isfinite(res.rejection["threshold"])


@pytest.mark.slow
def test_a_feature_rule_is_stored_and_used_by_predict_evaluate_and_onnx(trained, tmp_path: Path) -> None:
    import shutil

    from imgclf.export import export_bundle
    from imgclf.robustness import robustness

    src, clf, ood = trained
    bundle = tmp_path / "bundle"
    shutil.copytree(clf.result_.bundle_dir, bundle)
    (tmp_path / "model_card.md").write_text("# Model card: test\n\n## Intended use\n\nTests.\n")
    res = robustness(bundle, str(src), max_images=24, attacks=(), corruptions=False, fit_images=200, store=False)
    assert "synthetic outliers" in res.rejection["reason"]  # no --ood: chosen against synthetic outliers
    best = max(r.auroc for r in res.ood.values())  # the best, or a rule tied with it within 0.01
    assert res.ood[res.rejection["score"]].auroc >= best - 0.01
    res = robustness(bundle, str(src), max_images=24, attacks=(), corruptions=False, fit_images=200, rule="knn")
    meta = read_meta(bundle)
    assert meta.rejection["score"] == "knn" and "--rule" in meta.rejection["reason"]
    assert (bundle / "rejection.safetensors").is_file() and set(res.rejection_stats) == {"bank", "k"}
    card = (tmp_path / "model_card.md").read_text()
    assert "## Rejection of unknown inputs" in card and "`knn`" in card and "Intended use" in card
    eager = imgclf.load(bundle)
    preds = eager.predict([str(src / "red"), str(ood)])
    assert all(p.ood_score is not None for p in preds)
    assert all(p.reason and "knn score" in p.reason for p in preds if p.label == "unknown")
    assert any(p.label == "unknown" for p in preds) and any(p.label != "unknown" for p in preds)
    ev = eager.evaluate(str(src), n_resamples=10)
    assert ev.rejection["score"] == "knn" and 0.5 <= ev.rejection["accepted"] <= 1.0
    copy = eager.save(tmp_path / "copy")  # the statistics travel with a saved copy
    assert [p.label for p in imgclf.load(copy).predict([str(ood)])] == [p.label for p in eager.predict([str(ood)])]
    export_bundle(bundle, data=str(src), parity_images=8)
    onnx = imgclf.load(bundle, engine="onnxruntime")
    onnx_preds = onnx.predict([str(src / "red"), str(ood)])
    assert [p.ood_score for p in onnx_preds] == pytest.approx([p.ood_score for p in preds], abs=1e-3)
    assert [p.label for p in onnx_preds] == [p.label for p in preds]


@pytest.mark.slow
def test_certify_reports_a_curve_and_a_smoothed_bundle_abstains_with_a_reason(trained, tmp_path: Path) -> None:
    import shutil

    src, clf, _ = trained
    bundle = tmp_path / "bundle"
    shutil.copytree(clf.result_.bundle_dir, bundle)
    out = tmp_path / "rob"
    res = cli("robustness", str(bundle), str(src), "--max-images", "16", "--no-corruptions", "--certify", "0.25",
              "--certify-images", "12", "--certify-samples", "100", "--epsilons", "0,8/255", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "certified accuracy" in res.stdout and "why " in res.stdout
    assert (out / "certified_accuracy.png").is_file()
    cert = json.loads((out / "robustness.json").read_text())["certified"]
    assert cert["sigma"] == 0.25 and all(a >= b for a, b in zip(cert["accuracies"], cert["accuracies"][1:]))
    smoothing = read_meta(bundle).extra["smoothing"]
    assert smoothing["sigma"] == 0.25 and smoothing["samples"] == 100
    tie = tmp_path / "tie"
    tie.mkdir()
    Image.new("RGB", (32, 32), (128, 128, 128)).save(tie / "grey.png")
    loaded = imgclf.load(bundle)
    preds = loaded.predict([str(src / "red"), str(tie)], top_k=1)
    for p in preds:
        if p.label == "unknown":
            assert p.reason and ("abstained" in p.reason or "score" in p.reason), p
    reds = [p for p in preds if "red" in p.path]
    assert np.mean([p.label == "red" for p in reds]) >= 0.7  # the smoothed answer on clean training-like images
    raw = loaded.predict([str(tie)], reject=False)
    assert raw[0].label != "unknown"


@pytest.mark.slow
def test_the_training_pass_fits_a_feature_rule_that_predict_uses(trained, tmp_path: Path) -> None:
    """`train.rejection=mahalanobis`: statistics from training images, threshold from the validation pass."""
    src, _, ood = trained
    clf = imgclf.fit(src, model="test_cnn", epochs=5, img_size=32, out=str(tmp_path), name="maha",
                     sets=["data.workers=0", "optim.lr=3e-3", "data.augment=light", "train.report=false",
                           "train.rejection=mahalanobis"])  # fmt: skip
    rule = read_meta(clf.result_.bundle_dir).rejection
    assert rule["score"] == "mahalanobis" and rule["fit_images"] >= 90  # every training image (96 here)
    assert (clf.result_.bundle_dir / "rejection.safetensors").is_file()
    loaded = imgclf.load(clf.result_.bundle_dir)
    assert np.mean([p.label == "unknown" for p in loaded.predict([str(ood)])]) >= 0.9
    assert np.mean([p.label != "unknown" for p in loaded.predict([str(src / "red")])]) >= 0.8


@pytest.mark.slow
def test_adapt_runs_on_a_copy_in_predict_evaluate_and_the_robustness_report(trained, tmp_path: Path) -> None:
    import torch

    src, clf, _ = trained
    bundle = clf.result_.bundle_dir
    weights = (bundle / "model.safetensors").read_bytes()
    res = cli("evaluate", str(bundle), str(src), "--adapt", "bn", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["accuracy"] >= 0.7  # batch statistics of a shuffled stream keep it usable
    res = cli("predict", str(bundle), str(src), "--adapt", "tent", "--json")  # every class, mixed batches
    assert res.returncode == 0, res.stderr
    assert np.mean([p["label"] == Path(p["path"]).parent.name for p in json.loads(res.stdout)]) >= 0.7
    loaded = imgclf.load(bundle)
    before = {k: v.clone() for k, v in loaded.model_.state_dict().items()}
    adapted = loaded.adapted("tent")
    adapted.predict([str(src / "red"), str(src / "blue")])
    assert all(torch.equal(before[k], v) for k, v in loaded.model_.state_dict().items())  # original untouched
    assert (bundle / "model.safetensors").read_bytes() == weights
    out = tmp_path / "rob"
    res = cli("robustness", str(bundle), str(src), "--max-images", "24", "--epsilons", "0", "--adapt", "bn,tent",
              "--no-store", "--out", str(out), "--json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    adaptation = json.loads(res.stdout)["adaptation"]
    assert set(adaptation) == {"severities", "none", "bn", "tent"}
    assert all(0 <= adaptation[m]["mean_corruption_accuracy"] <= 1 for m in ("none", "bn", "tent"))
