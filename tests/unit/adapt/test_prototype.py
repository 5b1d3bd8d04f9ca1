from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tests.unit.adapt.conftest import CLASSES, make_bundle
from typer.testing import CliRunner

from imgclf.adapt import embed_images, episode_indices, episodes, fewshot_bundle, prototypes
from imgclf.bundle import Bundle, load_bundle
from imgclf.cli._app import app
from imgclf.data import load_source
from imgclf.engine import run_inference
from imgclf.errors import DataError, ModelError
from imgclf.export import export_bundle


def test_prototypes_are_unit_means_of_unit_features() -> None:
    f = np.array([[3.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 5.0]])
    p = prototypes(f, np.array([0, 0, 1, 1]), 2)
    np.testing.assert_allclose(np.linalg.norm(p, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(p[0], np.array([1.0, 1.0]) / np.sqrt(2), rtol=1e-6)
    with pytest.raises(DataError, match=r"\[2\]"):
        prototypes(f, np.array([0, 0, 1, 1]), 3)


def _accuracy(bundle: Bundle, images: Path) -> float:
    splits = load_source(images, val_fraction=0.0, test_fraction=0.0)
    out = run_inference(bundle.model, splits.train, bundle.meta.preprocessing)
    names = np.array(bundle.meta.classes)[out.logits.argmax(1)]
    return float((names == np.array(splits.classes)[out.labels]).mean())


def test_fewshot_head_is_the_nearest_prototype_and_loads_as_a_bundle(backbone: Bundle, support: Path,
                                                                     images: Path, tmp_path: Path) -> None:  # fmt: skip
    res = fewshot_bundle(backbone, support, tmp_path / "fs")
    loaded = load_bundle(tmp_path / "fs")
    assert loaded.meta.classes == tuple(sorted(CLASSES)) and res.shots == {c: 3 for c in sorted(CLASSES)}
    assert loaded.meta.extra["head"]["kind"] == "prototype"
    # the head's argmax is exactly the nearest prototype by cosine
    emb = embed_images(loaded, [images])
    sup = embed_images(backbone, [support])
    labels = np.array([sorted(CLASSES).index(Path(p).parent.name) for p in sup.paths])
    protos = prototypes(sup.vectors, labels, len(CLASSES))
    f = emb.vectors / np.linalg.norm(emb.vectors, axis=1, keepdims=True)
    out = run_inference(loaded.model, load_source(images, val_fraction=0.0, test_fraction=0.0).train,
                        loaded.meta.preprocessing)  # fmt: skip
    np.testing.assert_array_equal(out.logits.argmax(1), (f @ protos.T).argmax(1))
    assert _accuracy(loaded, images) >= 0.9


def test_extending_keeps_old_rows_and_old_accuracy(backbone: Bundle, support: Path, images: Path,
                                                   tmp_path: Path) -> None:  # fmt: skip
    import shutil

    base_sup, new_sup = tmp_path / "base", tmp_path / "new"
    for c in CLASSES[:3]:
        shutil.copytree(support / c, base_sup / c)
    shutil.copytree(support / CLASSES[3], new_sup / CLASSES[3])
    base = fewshot_bundle(backbone, base_sup, tmp_path / "b3").bundle
    ext = fewshot_bundle(backbone, new_sup, tmp_path / "b4", extend=base).bundle
    assert ext.meta.classes == (*base.meta.classes, CLASSES[3])
    torch.testing.assert_close(ext.model.get_classifier().weight[:3], base.model.get_classifier().weight)
    old = tmp_path / "old"
    for c in CLASSES[:3]:
        shutil.copytree(images / c, old / c)
    assert _accuracy(ext, old) >= _accuracy(base, old) - 0.01
    assert _accuracy(ext, images) >= 0.9
    exp = export_bundle(ext.path, data=str(images))  # the extended head exports like any other
    assert exp.parity.top1_agreement == 1.0 and exp.parity.max_abs_logit_diff < 1e-3
    with pytest.raises(DataError, match="already in it"):
        fewshot_bundle(backbone, base_sup, tmp_path / "dup", extend=base)
    with pytest.raises(ModelError, match="trained head"):
        fewshot_bundle(backbone, new_sup, tmp_path / "y", extend=backbone)
    with pytest.raises(ModelError, match="backbone weights differ"):
        fewshot_bundle(make_bundle(tmp_path / "other", seed=5), new_sup, tmp_path / "x", extend=base)


def test_episode_indices_are_seeded_and_drawn_within_classes() -> None:
    labels = np.repeat(np.arange(6), 10)
    a = episode_indices(labels, n_episodes=20, ways=4, per_class=5, seed=1)
    assert a.shape == (20, 4, 5)
    np.testing.assert_array_equal(a, episode_indices(labels, n_episodes=20, ways=4, per_class=5, seed=1))
    for ep in a:
        assert len({labels[row[0]] for row in ep}) == 4  # 4 distinct classes
        for row in ep:
            assert len(set(row)) == 5 and len(set(labels[row])) == 1  # distinct images of one class


def test_episodes_report_a_confidence_interval_around_the_mean(backbone: Bundle, images: Path) -> None:
    res = episodes(backbone, images, n_episodes=40, ways=3, shots=1, queries=5)
    assert res.episodes == 40 and len(res.per_episode) == 40
    assert res.ci_low <= res.accuracy <= res.ci_high
    assert res.accuracy >= 0.8  # colour classes are far apart even in random conv features
    with pytest.raises(DataError, match="--ways 5"):
        episodes(backbone, images, ways=5)
    with pytest.raises(DataError, match="shots"):
        episodes(backbone, images, ways=3, shots=10, queries=5)


def test_cli_fewshot_bundle_exports_with_parity(backbone: Bundle, support: Path, images: Path,
                                                tmp_path: Path) -> None:  # fmt: skip
    runner = CliRunner()
    res = runner.invoke(app, ["fewshot", str(backbone.path), str(support), "--out", str(tmp_path / "fs")])
    assert res.exit_code == 0, res.output
    exp = export_bundle(tmp_path / "fs", data=str(images))
    assert exp.parity.top1_agreement == 1.0 and exp.parity.max_abs_logit_diff < 1e-3
    res = runner.invoke(app, ["fewshot", str(backbone.path), str(images), "--episodes", "10", "--ways", "2",
                              "--shots", "1", "--queries", "5", "--json"])  # fmt: skip
    assert res.exit_code == 0 and '"ci_low"' in res.output
    res = runner.invoke(app, ["fewshot", str(backbone.path), str(images)])
    assert res.exit_code == 2 and "--out" in res.output


def test_centred_heads_and_the_extend_guard(backbone: Bundle, support: Path, images: Path, tmp_path: Path) -> None:
    import shutil

    # centred: the head's argmax is the nearest prototype of the features minus the support mean, which is saved
    res = fewshot_bundle(backbone, support, tmp_path / "c", center=True).bundle
    assert (tmp_path / "c" / "prototypes.safetensors").is_file()
    sup = embed_images(backbone, [support])
    mu = sup.vectors.mean(axis=0)
    labels = np.array([res.meta.classes.index(Path(p).parent.name) for p in sup.paths])
    protos = prototypes(sup.vectors, labels, len(CLASSES), center=mu)
    out = run_inference(res.model, load_source(images, val_fraction=0.0, test_fraction=0.0).train,
                        res.meta.preprocessing, features=True)  # fmt: skip
    np.testing.assert_array_equal(out.logits.argmax(1), ((out.features - mu) @ protos.T).argmax(1))
    # extending a centred bundle: old rows kept; the guard lowers only the new class's bias, by less than every
    # support image's lead, so each of the new class's support images is still given the new class
    base_sup, new_sup = tmp_path / "base", tmp_path / "new"
    for c in CLASSES[:3]:
        shutil.copytree(support / c, base_sup / c)
    shutil.copytree(support / CLASSES[3], new_sup / CLASSES[3])
    base = fewshot_bundle(backbone, base_sup, tmp_path / "b3", center=True).bundle
    plain = fewshot_bundle(backbone, new_sup, tmp_path / "p4", extend=base, guard=0.0).bundle
    guarded = fewshot_bundle(backbone, new_sup, tmp_path / "g4", extend=base).bundle
    hp, hg = plain.model.get_classifier(), guarded.model.get_classifier()
    torch.testing.assert_close(hg.weight, hp.weight)
    torch.testing.assert_close(hg.bias[:3], base.model.get_classifier().bias)
    assert float(hg.bias[3]) < float(hp.bias[3])
    with torch.no_grad():
        logits = hg(torch.as_tensor(embed_images(backbone, [new_sup]).vectors))  # (3, 4): test_cnn's head is linear
    assert np.array(guarded.meta.classes)[logits.argmax(1).numpy()].tolist() == [CLASSES[3]] * 3


def test_fewshot_on_a_headless_embedding_bundle(backbone: Bundle, support: Path, images: Path,
                                                tmp_path: Path) -> None:  # fmt: skip
    """`imgclf pretrain` writes the backbone alone (num_classes=0): a prototype head goes on top of it."""
    from imgclf.bundle import BundleMeta, save_bundle
    from imgclf.models import create_model

    headless = create_model("test_cnn", 0)
    headless.load_state_dict({k: v for k, v in backbone.model.state_dict().items()
                              if not k.startswith(("fc.", "head.", "classifier."))}, strict=False)  # fmt: skip
    assert not list(headless.get_classifier().parameters())
    save_bundle(tmp_path / "ssl", headless.eval(), BundleMeta("test_cnn", (), backbone.meta.preprocessing))
    res = fewshot_bundle(load_bundle(tmp_path / "ssl"), support, tmp_path / "fs")
    assert res.classes == tuple(sorted(CLASSES))
    assert _accuracy(load_bundle(tmp_path / "fs"), images) >= 0.9
