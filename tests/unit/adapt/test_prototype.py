from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tests.unit.adapt.conftest import CLASSES, make_bundle
from typer.testing import CliRunner

from imgclf.adapt import embed_images, episode_indices, episodes, fewshot_bundle, prototypes, whitening
from imgclf.bundle import Bundle, load_bundle
from imgclf.cli._app import app
from imgclf.data import load_source
from imgclf.engine import run_inference
from imgclf.errors import ConfigError, DataError, ModelError
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


def _spread(rng: np.random.Generator, classes: int, n: int, d: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """``n`` features per class around random centres, spread 12x wider along two nuisance directions (as a
    backbone's features are along directions learned for its training classes) than along the others."""
    labels = np.repeat(np.arange(classes), n)
    widths = np.ones(d)
    widths[:2] = 12.0
    return (rng.normal(size=(classes, d)) * 3)[labels] + rng.normal(size=(len(labels), d)) * widths, labels


def test_whitening_undoes_a_shared_within_class_spread() -> None:
    """Nearest-prototype by cosine fails on raw features of *new* classes and works once they are whitened by the
    spread of *other* classes."""
    rng = np.random.default_rng(0)
    base_x, base_y = _spread(rng, 6, 200)
    mu, a = whitening(base_x, base_y, shrinkage=0.0)
    # the base classes' within-class covariance becomes the identity
    r = torch.as_tensor(base_x, dtype=torch.float32) - mu
    r = r - torch.stack([r[torch.as_tensor(base_y) == c].mean(0) for c in range(6)])[torch.as_tensor(base_y)]
    cov = (r @ a).T @ (r @ a) / (len(r) - 6)
    torch.testing.assert_close(cov, torch.eye(16), atol=1e-3, rtol=0)
    _, iso = whitening(base_x, base_y, shrinkage=1.0)  # all the way: a multiple of the identity, centring only
    torch.testing.assert_close(iso, iso[0, 0] * torch.eye(16))

    new_x, new_y = _spread(rng, 5, 40)
    sup = np.concatenate([np.flatnonzero(new_y == c)[:5] for c in range(5)])
    qry = np.setdiff1d(np.arange(len(new_y)), sup)

    def accuracy(f: np.ndarray) -> float:
        p = prototypes(f[sup], new_y[sup], 5)
        q = f[qry] / np.linalg.norm(f[qry], axis=1, keepdims=True)
        return float(((q @ p.T).argmax(1) == new_y[qry]).mean())

    raw = accuracy(new_x)
    mu, a = whitening(base_x, base_y)  # the default shrinkage
    whitened = accuracy(((torch.as_tensor(new_x, dtype=torch.float32) - mu) @ a).numpy())
    assert whitened >= raw + 0.2 and whitened >= 0.8, (raw, whitened)
    # unlabelled features (one label for all) are whitened by their total covariance
    r = torch.as_tensor(base_x, dtype=torch.float32) - torch.as_tensor(base_x, dtype=torch.float32).mean(0)
    _, total = whitening(base_x, np.zeros(len(base_x), dtype=int), shrinkage=0.0)
    torch.testing.assert_close((r @ total).T @ (r @ total) / (len(r) - 1), torch.eye(16), atol=1e-3, rtol=0)
    with pytest.raises(DataError, match="more images than classes"):
        whitening(base_x[:2], np.array([0, 1]))
    with pytest.raises(ConfigError, match="shrinkage"):
        whitening(base_x, base_y, shrinkage=1.5)


def test_base_whitened_heads_are_linear_extend_and_export(backbone: Bundle, support: Path, images: Path,
                                                         tmp_path: Path) -> None:  # fmt: skip
    """--base: the head's argmax is the nearest prototype of the whitened, centred embedding; both are saved, so
    --extend maps a new class the same way; the head exports with parity; --base with --center is refused."""
    import shutil

    from imgclf.adapt._prototype import _frame

    base_sup, new_sup = tmp_path / "base", tmp_path / "new"
    for c in CLASSES[:3]:
        shutil.copytree(support / c, base_sup / c)
    shutil.copytree(support / CLASSES[3], new_sup / CLASSES[3])
    res = fewshot_bundle(backbone, base_sup, tmp_path / "w", base=images)
    head = res.bundle.meta.extra["head"]
    assert head["whitened"] == {"base": str(images), "images": 48, "shrinkage": 0.5}
    mu, a = _frame(res.bundle)
    emb = embed_images(backbone, [images])
    want_mu, want_a = whitening(emb.vectors, np.array([CLASSES.index(Path(p).parent.name) for p in emb.paths]))
    torch.testing.assert_close(mu, want_mu)
    torch.testing.assert_close(a, want_a)
    sup = embed_images(backbone, [base_sup])
    labels = np.array([res.bundle.meta.classes.index(Path(p).parent.name) for p in sup.paths])
    z = ((torch.as_tensor(sup.vectors) - mu) @ a).numpy()
    protos = prototypes(z, labels, 3)
    out = run_inference(res.bundle.model, load_source(images, val_fraction=0.0, test_fraction=0.0).train,
                        res.bundle.meta.preprocessing, features=True)  # fmt: skip
    zq = ((torch.as_tensor(out.features) - mu) @ a).numpy()
    np.testing.assert_array_equal(out.logits.argmax(1), (zq @ protos.T).argmax(1))
    # extended with guard 0: the nearest of all four prototypes in the same whitened space
    ext = fewshot_bundle(backbone, new_sup, tmp_path / "e", extend=res.bundle, guard=0.0).bundle
    assert ext.meta.extra["head"]["whitened"] == head["whitened"]
    torch.testing.assert_close(ext.model.get_classifier().weight[:3], res.bundle.model.get_classifier().weight)
    new = embed_images(backbone, [new_sup])
    p4 = prototypes(((torch.as_tensor(new.vectors) - mu) @ a).numpy(), np.zeros(len(new.paths), dtype=int), 1)
    logits = run_inference(ext.model, load_source(images, val_fraction=0.0, test_fraction=0.0).train,
                           ext.meta.preprocessing).logits  # fmt: skip
    np.testing.assert_array_equal(logits.argmax(1), (zq @ np.concatenate([protos, p4]).T).argmax(1))
    exp = export_bundle(ext.path, data=str(images))
    assert exp.parity.top1_agreement == 1.0 and exp.parity.max_abs_logit_diff < 1e-3
    with pytest.raises(ConfigError, match="--base"):
        fewshot_bundle(backbone, base_sup, tmp_path / "x", base=images, center=True)
    # a folder of loose images (an `imgclf pretrain` backbone's data): whitened by their total covariance
    loose = tmp_path / "loose"
    loose.mkdir()
    for p in sorted(images.rglob("*.png")):
        shutil.copy(p, loose / f"{p.parent.name}-{p.name}")
    mu, a = _frame(fewshot_bundle(backbone, base_sup, tmp_path / "u", base=loose).bundle)
    torch.testing.assert_close(a, whitening(emb.vectors, np.zeros(len(emb.vectors), dtype=int))[1])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="--base"):
        fewshot_bundle(backbone, base_sup, tmp_path / "y", base=tmp_path / "empty")


def test_episodes_and_cli_with_base(backbone: Bundle, support: Path, images: Path, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Episodes whiten by --base's images: on features spread along nuisance directions (as in the test above)
    they gain what the head does. The CLI passes --base through and refuses --base with --center in one line."""
    from imgclf.adapt import _prototype

    runner = CliRunner()
    res = runner.invoke(app, ["fewshot", str(backbone.path), str(images), "--base", str(support), "--out",
                              str(tmp_path / "fs"), "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert load_bundle(tmp_path / "fs").meta.extra["head"]["whitened"]["base"] == str(support)
    res = runner.invoke(app, ["fewshot", str(backbone.path), str(images), "--base", str(support), "--center",
                              "--episodes", "5", "--ways", "3"])  # fmt: skip
    assert res.exit_code != 0 and "--base" in res.output
    # a bundle that records where its training images are gets a tip naming them, unless --base is given
    from imgclf.bundle import BundleMeta, save_bundle

    save_bundle(tmp_path / "rec", backbone.model, BundleMeta("test_cnn", backbone.meta.classes,
                                                            backbone.meta.preprocessing,
                                                            data={"kind": "folder", "root": str(support)}))  # fmt: skip
    for extra, tip in (([], True), (["--base", str(support)], False)):
        res = runner.invoke(app, ["fewshot", str(tmp_path / "rec"), str(images), "--episodes", "5", "--ways", "3",
                                  "--shots", "1", "--queries", "5", *extra])  # fmt: skip
        assert res.exit_code == 0 and ("tip:" in res.output and f"--base {support}" in res.output) is tip, res.output

    rng = np.random.default_rng(1)
    fake = {str(images): _spread(rng, 4, 12), str(support): _spread(rng, 6, 100)}  # 4 new classes; 6 others

    def features(bundle: Bundle, samples: object, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        return next(v for k, v in fake.items() if samples.paths[0].startswith(k))  # type: ignore[attr-defined]

    monkeypatch.setattr(_prototype, "_features", features)
    plain = episodes(backbone, images, n_episodes=50, ways=4, shots=3, queries=5)
    white = episodes(backbone, images, n_episodes=50, ways=4, shots=3, queries=5, base=support)
    assert white.accuracy >= plain.accuracy + 0.15 and white.accuracy >= 0.8, (plain.accuracy, white.accuracy)
