from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from imgclf.adapt import (
    check_templates,
    embed_images,
    episodes,
    fewshot_bundle,
    load_clip,
    prototypes,
    zeroshot_bundle,
)
from imgclf.bundle import Bundle, load_bundle
from imgclf.cli._app import app
from imgclf.data import InputImages, load_source, sample_tensors
from imgclf.engine import run_inference
from imgclf.errors import ConfigError, ModelError
from imgclf.export import export_bundle

open_clip = pytest.importorskip("open_clip")

CFG = {"embed_dim": 16,
       "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 32, "layers": 1, "head_width": 16, "mlp_ratio": 2.0},
       "text_cfg": {"context_length": 12, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1}}  # fmt: skip
PRE = {"size": 32, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "interpolation": "bilinear"}


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny open_clip model saved as users keep one offline: config + safetensors weights."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = open_clip.CLIP(**CFG)
    out = tmp_path_factory.mktemp("clip")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "open_clip_model.safetensors"))
    (out / "open_clip_config.json").write_text(json.dumps({"model_cfg": CFG, "preprocess_cfg": PRE}))
    return out


def test_bundle_logits_are_clip_similarities_with_the_template_ensemble(clip_dir: Path, tmp_path: Path) -> None:
    templates = ["a photo of a {}.", "a drawing of a {}."]
    bundle = zeroshot_bundle(str(clip_dir), ["cat", "dog", "bird"], tmp_path / "zs", templates=templates)
    loaded = load_bundle(tmp_path / "zs")
    assert loaded.meta.classes == ("cat", "dog", "bird") and loaded.meta.extra["head"]["templates"] == templates
    pre = loaded.meta.preprocessing
    assert (pre.input_size, pre.mean, pre.std) == (32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    # the text tower is not shipped: only the image tower and the head
    assert not any(k.startswith(("transformer", "token_embedding")) for k in loaded.model.state_dict())
    clip = load_clip(str(clip_dir))
    x, _ = sample_tensors(InputImages([np.full((40, 40, 3), v, np.uint8) for v in (0, 90, 200)]), pre)
    with torch.no_grad():
        img = clip.model.encode_image(x, normalize=True)  # (3, E)
        rows = []
        for name in ("cat", "dog", "bird"):
            t = clip.model.encode_text(clip.tokenizer([s.format(name) for s in templates]), normalize=True)
            rows.append(torch.nn.functional.normalize(t.mean(0), dim=0))
        expected = clip.model.logit_scale.exp() * img @ torch.stack(rows).T  # (3, 3)
        torch.testing.assert_close(loaded.model(x), expected, rtol=1e-4, atol=1e-4)
    assert bundle.meta.weights_sha256 == loaded.meta.weights_sha256


def test_weights_file_needs_its_config_and_preprocessing(clip_dir: Path, tmp_path: Path) -> None:
    weights = str(clip_dir / "open_clip_model.safetensors")
    with pytest.raises(ModelError, match="--config"):
        zeroshot_bundle(weights, ["a", "b"], tmp_path / "x")
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps({"model_cfg": CFG}))
    with pytest.raises(ModelError, match="preprocess_cfg"):
        zeroshot_bundle(weights, ["a", "b"], tmp_path / "x", config=bare)
    ok = zeroshot_bundle(weights, ["a", "b"], tmp_path / "ok", config=clip_dir / "open_clip_config.json")
    assert ok.meta.classes == ("a", "b")
    pickled = tmp_path / "w.bin"
    pickled.write_bytes(b"x")
    with pytest.raises(ModelError, match="unpickles"):
        zeroshot_bundle(str(pickled), ["a", "b"], tmp_path / "x")
    with pytest.raises(ModelError, match="neither a file"):
        zeroshot_bundle("no-such-arch", ["a", "b"], tmp_path / "x")


def test_templates_and_classes_are_checked_first() -> None:
    with pytest.raises(ConfigError, match=r"\{\}"):
        check_templates(["a photo"])
    with pytest.raises(ConfigError, match="two distinct"):
        zeroshot_bundle("unused", ["cat", "cat"], "unused")


def test_cli_zeroshot_with_files_then_predict(clip_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "names.txt").write_text("# digits\nzero\none\n")
    (tmp_path / "prompts.txt").write_text("a photo of {}.\n{} written by hand.\n")
    runner = CliRunner()
    res = runner.invoke(app, ["zeroshot", str(clip_dir), "--classes-file", str(tmp_path / "names.txt"),
                              "--templates", str(tmp_path / "prompts.txt"), "--out", str(tmp_path / "zs")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "2 classes, 2 prompt templates" in " ".join(res.output.split())
    from PIL import Image

    Image.new("RGB", (32, 32), (200, 10, 10)).save(tmp_path / "q.png")
    res = runner.invoke(app, ["predict", str(tmp_path / "zs"), str(tmp_path / "q.png"), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)[0]["label"] in ("zero", "one")
    res = runner.invoke(app, ["zeroshot", str(clip_dir), "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "--classes" in res.output


def test_zeroshot_and_prototype_heads_on_the_clip_tower_export_with_parity(
        clip_dir: Path, support: Path, images: Path, tmp_path: Path) -> None:  # fmt: skip
    zs = zeroshot_bundle(str(clip_dir), ["red", "green", "blue", "yellow"], tmp_path / "zs")
    exp = export_bundle(zs.path, data=str(images))
    assert exp.parity.top1_agreement == 1.0 and exp.parity.max_abs_logit_diff < 1e-3
    # a prototype head on the same image tower, whose head sees normalised embeddings: centred there
    fs = fewshot_bundle(zs, support, tmp_path / "fs").bundle
    sup = embed_images(zs, [support])
    unit = sup.vectors / np.linalg.norm(sup.vectors, axis=1, keepdims=True)
    labels = np.array([fs.meta.classes.index(Path(p).parent.name) for p in sup.paths])
    protos = prototypes(unit, labels, len(fs.meta.classes), center=unit.mean(axis=0))
    out = run_inference(fs.model, load_source(images, val_fraction=0.0, test_fraction=0.0).train,
                        fs.meta.preprocessing, features=True)  # fmt: skip
    q = out.features / np.linalg.norm(out.features, axis=1, keepdims=True) - unit.mean(axis=0)
    np.testing.assert_array_equal(out.logits.argmax(1), (q @ protos.T).argmax(1))
    exp = export_bundle(fs.path, data=str(images))
    assert exp.parity.top1_agreement == 1.0 and exp.parity.max_abs_logit_diff < 1e-3


def test_episodes_whiten_what_the_head_sees(clip_dir: Path, backbone: Bundle, support: Path, images: Path,
                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """`--episodes --base` maps embeddings as the bundle does: normalised first on a tower whose head normalises
    its input (the CLIP image tower), as they are on a plain linear head (so episodes predict the bundle)."""
    from imgclf.adapt import _prototype

    seen: list[bool] = []
    real = _prototype._base_frame

    def spy(bundle: Bundle, base: Path, shrinkage: float, unit: bool, batch_size: int) -> tuple:
        seen.append(unit)
        return real(bundle, base, shrinkage, unit, batch_size)

    monkeypatch.setattr(_prototype, "_base_frame", spy)
    zs = zeroshot_bundle(str(clip_dir), ["red", "green", "blue", "yellow"], tmp_path / "zs")
    episodes(zs, images, n_episodes=5, ways=4, shots=2, queries=2, base=support)
    fewshot_bundle(zs, images, tmp_path / "fs", base=support)
    episodes(backbone, images, n_episodes=5, ways=4, shots=2, queries=2, base=support)
    assert seen == [True, True, False]


def test_a_conv_image_tower_rebuilds_from_its_config_and_exports(images: Path, tmp_path: Path) -> None:
    """open_clip's ModifiedResNet tower (``layers`` given as a list) goes through the same path as a ViT: the
    bundle rebuilds it from the saved config, its logits are CLIP's similarities, and ONNX agrees."""
    from safetensors.torch import save_file

    cfg = {**CFG, "vision_cfg": {"image_size": 32, "layers": [1, 1, 1, 1], "width": 8, "head_width": 16}}
    torch.manual_seed(1)
    model = open_clip.CLIP(**cfg)
    clip = tmp_path / "rn"
    clip.mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(clip / "open_clip_model.safetensors"))
    (clip / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": PRE}))
    zeroshot_bundle(str(clip), ["red", "green", "blue", "yellow"], tmp_path / "zs", templates=["a {} shape."])
    loaded = load_bundle(tmp_path / "zs")
    assert loaded.meta.arch_args["vision_cfg"]["layers"] == [1, 1, 1, 1]
    x, _ = sample_tensors(load_source(images, val_fraction=0.0, test_fraction=0.0).train, loaded.meta.preprocessing,
                          limit=8)  # fmt: skip
    with torch.no_grad():
        model.eval()
        text = model.encode_text(open_clip.SimpleTokenizer(context_length=12)(
            [f"a {c} shape." for c in ("red", "green", "blue", "yellow")]), normalize=True)  # fmt: skip
        expected = model.logit_scale.exp() * model.encode_image(x, normalize=True) @ text.T  # (8, 4)
        torch.testing.assert_close(loaded.model(x), expected, rtol=1e-4, atol=1e-4)
    exp = export_bundle(tmp_path / "zs", data=str(images))
    assert exp.parity.top1_agreement == 1.0 and exp.parity.max_abs_logit_diff < 1e-3
