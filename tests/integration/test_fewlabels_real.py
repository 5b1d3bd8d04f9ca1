"""Few-shot and zero-shot on real MNIST: a Conv-4 trained on digits 0-4 meets digits 5-9 only as few-shot
episodes; a tiny open_clip model trained on captioned digits classifies test digits from held-out prompts.

Figures measured while building this (300 episodes on 200 test images of each of 5-9; 95% CIs about +-0.5 and
+-1): the backbone trained 6 epochs, no label smoothing, on every MNIST training image of 0-4 (30,596): 5-way
5-shot 89.2% plain, **91.7%** whitened by its own training images (``--base``), 1-shot 74.2% / **76.6%**: both
targets (90%, 70%) met. On 1,000 images per class it was 85.3 / 89.6% and 69.7 / 74.3% (the 5-shot target missed).
The tiny CLIP (ModifiedResNet image tower, ~90 s to train) reaches 97.8% zero-shot with held-out prompts, the
ensemble equal to every single prompt.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from tests.tinyclip import DIGITS, HELD_OUT_TEMPLATES, train_tiny_clip

import imgclf
from imgclf.adapt import episodes, fewshot_bundle, zeroshot_bundle
from imgclf.bundle import Bundle, load_bundle
from imgclf.data import load_source
from imgclf.engine import run_inference
from imgclf.export import export_bundle

pytestmark = [pytest.mark.real, pytest.mark.slow]


def _manifest(path: Path, root: Path, digits: range | list[int], n: int, names: tuple[str, ...] | None = None) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        for d in digits:
            for p in sorted((root / str(d)).iterdir())[:n]:
                w.writerow([str(p), names[d] if names else str(d)])
    return path


@pytest.fixture(scope="module")
def base_data(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every training image of the digits 0-4: the backbone's training set (and --base)."""
    return _manifest(tmp_path_factory.mktemp("base") / "base.csv", mnist_dir / "train", range(5), 10**6)


@pytest.fixture(scope="module")
def base_04(base_data: Path, tmp_path_factory: pytest.TempPathFactory) -> imgclf.Classifier:
    out = tmp_path_factory.mktemp("fewshot")
    # no label smoothing (it flattens the features around the training classes: +1-2 points 1-shot on novel
    # digits, measured on training images of 5-9), 6 epochs; the near-duplicate audit is skipped for speed
    return imgclf.fit(str(base_data), model="conv4", epochs=6, batch_size=128, out=str(out), name="base",
                      sets=["train.report=false", "train.label_smoothing=0", "data.near_duplicates=false"])  # fmt: skip


@pytest.fixture(scope="module")
def novel_episodes(base_04: imgclf.Classifier, base_data: Path, mnist_dir: Path,
                   tmp_path_factory: pytest.TempPathFactory) -> dict:  # fmt: skip
    """Episodes on 200 test images of each of 5-9, plain and whitened by the backbone's training images."""
    bundle = load_bundle(base_04.result_.bundle_dir)
    novel = _manifest(tmp_path_factory.mktemp("novel") / "novel.csv", mnist_dir / "test", range(5, 10), 200)
    return {(shots, base is not None): episodes(bundle, novel, n_episodes=300, ways=5, shots=shots, queries=15,
                                                base=base)
            for shots in (5, 1) for base in (None, base_data)}  # fmt: skip


def test_fewshot_episodes_on_unseen_digits(novel_episodes: dict) -> None:
    five, one = novel_episodes[5, False], novel_episodes[1, False]
    # measured 89.2% and 74.2% (85.3% and 69.7% with 1,000 training images per class; CIs about +-0.5 and +-1.1)
    assert five.accuracy >= 0.87 and one.accuracy >= 0.72, (five.to_dict(), one.to_dict())
    assert five.ci_low > one.ci_high  # more shots help, beyond the noise


def test_whitening_by_the_base_classes_helps_on_new_digits(novel_episodes: dict) -> None:
    """--base: centred and whitened by the within-class spread of digits 0-4, prototypes of 5-9 are several points
    better (measured 89.2 -> 91.7% 5-shot, 74.2 -> 76.6% 1-shot, on the same episode draws; +4.3 and +4.6 on a
    backbone trained on 1,000 images per class)."""
    for shots in (5, 1):
        plain, white = novel_episodes[shots, False], novel_episodes[shots, True]
        assert white.accuracy >= plain.accuracy + 0.015, (shots, plain.to_dict(), white.to_dict())


def test_fewshot_one_shot_meets_the_issue_target(novel_episodes: dict) -> None:
    # measured 76.6% whitened, CI 75.6-77.5% (74.2% plain): met beyond the interval
    assert novel_episodes[1, True].ci_low >= 0.70, novel_episodes[1, True].to_dict()


def test_fewshot_five_shot_meets_the_issue_target(novel_episodes: dict) -> None:
    # measured 91.7% whitened, CI 91.3-92.1% (89.2% plain)
    assert novel_episodes[5, True].accuracy >= 0.90, novel_episodes[5, True].to_dict()


def test_prototype_bundle_on_unseen_digits_exports_with_parity(base_04: imgclf.Classifier, mnist_dir: Path,
                                                               tmp_path: Path) -> None:  # fmt: skip
    support = tmp_path / "support"
    for d in range(5, 10):
        (support / str(d)).mkdir(parents=True)
        for p in sorted((mnist_dir / "train" / str(d)).iterdir())[:5]:
            (support / str(d) / p.name).symlink_to(p)
    res = fewshot_bundle(load_bundle(base_04.result_.bundle_dir), support, tmp_path / "fs")
    query = _manifest(tmp_path / "q.csv", mnist_dir / "test", range(5, 10), 100)
    ev = imgclf.load(res.bundle.path).evaluate(str(query))
    assert ev.metrics.accuracy >= 0.7
    exp = export_bundle(res.bundle.path, data=str(query))
    assert exp.parity.top1_agreement == 1.0


def _support_dir(root: Path, src: Path, digits: range | list[int], n: int, skip: int = 0) -> Path:
    for d in digits:
        (root / str(d)).mkdir(parents=True)
        for p in sorted((src / str(d)).iterdir())[skip:skip + n]:
            (root / str(d) / p.name).symlink_to(p)
    return root


def _predicted(bundle: Bundle, manifest: Path) -> tuple[np.ndarray, np.ndarray]:
    """Predicted and true class names of a manifest's images."""
    splits = load_source(manifest, val_fraction=0.0, test_fraction=0.0)
    out = run_inference(bundle.model, splits.train, bundle.meta.preprocessing)
    return np.array(bundle.meta.classes)[out.logits.argmax(1)], np.array(splits.classes)[out.labels]


def test_extending_with_a_new_digit_keeps_the_old_digits_accuracy(base_04: imgclf.Classifier, mnist_dir: Path,
                                                                  tmp_path: Path) -> None:  # fmt: skip
    """A 4-class (5-8) prototype bundle gains digit 9 from 5 images; accuracy on 1000 test images of 5-8 moves
    by at most 1 point on average over three draws of the support images (and 9s are recognised).

    Measured (drop on 5-8 / recall of 9, mean of the 3 draws): guard 0 (plain nearest prototype) 3.7 points / 89%;
    guard 0.5 (default) 0.9 / 75%; 0.7: 0.6 / 64%; 0.9: 0.2 / 52% (on a backbone trained on 1,000 images per
    class: 2.3 / 89%, 0.6 / 72%, 0.3 / 60%, 0.2 / 47%)."""
    backbone = load_bundle(base_04.result_.bundle_dir)
    test = _manifest(tmp_path / "test.csv", mnist_dir / "test", range(5, 10), 250)
    drops, recalls = [], []
    for draw in range(3):
        sup_old = _support_dir(tmp_path / f"old{draw}", mnist_dir / "train", range(5, 9), 5, skip=5 * draw)
        sup_new = _support_dir(tmp_path / f"new{draw}", mnist_dir / "train", [9], 5, skip=5 * draw)
        base = fewshot_bundle(backbone, sup_old, tmp_path / f"b{draw}").bundle
        ext = fewshot_bundle(backbone, sup_new, tmp_path / f"e{draw}", extend=base).bundle  # the default guard
        assert ext.meta.classes == ("5", "6", "7", "8", "9")
        (pb, truth), (pe, _) = _predicted(base, test), _predicted(ext, test)
        old = truth != "9"
        drops.append(float((pb[old] == truth[old]).mean() - (pe[old] == truth[old]).mean()))
        recalls.append(float((pe[~old] == "9").mean()))
        for guard in (0.0, 0.7, 0.9):  # the trade-off, printed for the tutorial
            pg, _ = _predicted(fewshot_bundle(backbone, sup_new, tmp_path / f"g{draw}{guard}", extend=base,
                                              guard=guard).bundle, test)  # fmt: skip
            print(f"guard {guard}: drop {float((pb[old] == truth[old]).mean() - (pg[old] == truth[old]).mean()):.4f}"
                  f" recall {float((pg[~old] == '9').mean()):.3f}")
    print(f"extend: old-digit accuracy drops {drops}, recall of 9 {recalls}")
    assert float(np.mean(drops)) <= 0.01, (drops, recalls)
    assert float(np.mean(recalls)) >= 0.4, (drops, recalls)  # the new class is not simply switched off
    exp = export_bundle(tmp_path / "e0", data=str(test))
    assert exp.parity.top1_agreement == 1.0


@pytest.fixture(scope="module")
def tiny_clip(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_clip(mnist_dir, tmp_path_factory.mktemp("tinyclip"))


@pytest.fixture(scope="module")
def zero_shot(tiny_clip: Path, mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The exact user path offline: `imgclf zeroshot FOLDER --classes-file --templates` -> bundle -> evaluate, with
    prompt templates (and words) never seen in training; each single template through the library call."""
    from typer.testing import CliRunner

    from imgclf.cli._app import app

    tmp = tmp_path_factory.mktemp("zeroshot")
    test = _manifest(tmp / "t.csv", mnist_dir / "test", range(10), 100, names=DIGITS)
    (tmp / "names.txt").write_text("\n".join(DIGITS) + "\n")
    (tmp / "prompts.txt").write_text("\n".join(HELD_OUT_TEMPLATES) + "\n")
    res = CliRunner().invoke(app, ["zeroshot", str(tiny_clip), "--classes-file", str(tmp / "names.txt"),
                                   "--templates", str(tmp / "prompts.txt"), "--out", str(tmp / "zs")])
    assert res.exit_code == 0, res.output
    accs = {"ensemble": imgclf.load(tmp / "zs").evaluate(str(test), split="all").metrics.accuracy}
    samples = load_source(test, val_fraction=0.0, test_fraction=0.0).train  # classes sorted by name
    for t in HELD_OUT_TEMPLATES:
        bundle = zeroshot_bundle(str(tiny_clip), sorted(DIGITS), tmp / f"zs{len(accs)}", templates=(t,))
        out = run_inference(bundle.model, samples, bundle.meta.preprocessing)
        accs[t] = float((out.logits.argmax(1) == out.labels).mean())
    print(f"tiny CLIP zero-shot on 1000 test digits: {accs}")
    return {"accs": accs, "bundle": tmp / "zs", "test": test}


def test_tiny_clip_zero_shot_with_held_out_prompts(zero_shot: dict) -> None:
    accs = zero_shot["accs"]
    # measured here (ModifiedResNet tower, 600 steps, ~90 s on one core): ensemble 97.8%, each held-out template
    # alone 97.8%; on 1000 training digits the run never used, 98.6-98.7%
    assert accs["ensemble"] >= 0.93, accs
    assert accs["ensemble"] >= max(v for k, v in accs.items() if k != "ensemble") - 0.02, accs
    exp = export_bundle(zero_shot["bundle"], data=str(zero_shot["test"]))
    assert exp.parity.top1_agreement == 1.0


def test_tiny_clip_zero_shot_meets_the_issue_targets(zero_shot: dict) -> None:
    accs = zero_shot["accs"]
    assert accs["ensemble"] >= 0.90 and accs["ensemble"] >= max(v for k, v in accs.items() if k != "ensemble")
