"""explain(): every method, targets, options and errors, on tiny CNN and ViT models."""

from __future__ import annotations

import json

import pytest
import torch

from imgclf.errors import ConfigError, DataError, ModelError
from imgclf.explain import METHODS, Attribution, explain, normalize_maps
from imgclf.models import create_model

from .conftest import IMG, StandInTargetLayer, tiny_vit, vit_layer

# Few samples / steps: the tests check the plumbing, not the estimate's variance.
FAST = {
    "smoothgrad": {"samples": 4},
    "integrated-gradients": {"steps": 8},
    "occlusion": {"window": 8, "stride": 8},
    "lime": {"samples": 16, "superpixels": "grid", "segments": 16},
    "shap": {"samples": 8},
}


def _check_maps(att: Attribution, batch: int) -> None:
    assert att.maps.shape == (batch, IMG, IMG)
    assert att.maps.dtype == torch.float32
    assert torch.isfinite(att.maps).all()
    assert att.maps.min() >= 0 and att.maps.max() <= 1
    # normalised per image: each map spans [0, 1] (a flat map would mean the method saw nothing)
    assert torch.allclose(att.maps.amax(dim=(1, 2)), torch.ones(batch))


def test_methods_are_the_documented_seven() -> None:
    assert set(METHODS) == {
        "gradcam", "gradcam++", "smoothgrad", "integrated-gradients", "occlusion", "lime", "shap"
    }  # fmt: skip


@pytest.mark.parametrize("method", METHODS)
def test_every_method_gives_normalised_maps_on_a_cnn(tiny_cnn, images, method: str) -> None:
    att = explain(tiny_cnn, images, method=method, **FAST.get(method, {}))
    _check_maps(att, batch=2)
    assert att.method == method
    # the registry model's automatic target layer: its last conv stage
    assert att.layer == ("features" if method.startswith("gradcam") else None)


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "integrated-gradients"])
@pytest.mark.parametrize("source", ["timm", "registry"])
def test_vit_maps_with_the_automatic_layer(images, method: str, source: str) -> None:
    vit = tiny_vit() if source == "timm" else create_model("test_vit", num_classes=2).eval()
    att = explain(vit, images, method=method, **FAST.get(method, {}))
    _check_maps(att, batch=2)
    if method.startswith("gradcam"):
        assert att.layer == "blocks.1.norm1"
        # a 4x4 patch grid upsampled to 32x32: coarse, but neither flat nor a single blob
        assert att.maps.std() > 0.05


@pytest.mark.parametrize("global_pool", ["token", "avg"])
def test_vit_cam_on_the_last_block_itself(images, global_pool: str) -> None:
    # With class-token pooling, patch tokens leaving the last block never reach the logits (zero gradient);
    # CAM then reads the block's input tokens instead of returning an empty map.
    vit = tiny_vit(global_pool)
    att = explain(vit, images, method="gradcam", layer=vit_layer(vit))
    _check_maps(att, batch=2)
    assert att.layer == "blocks.1"


def test_explicit_layer_overrides_the_automatic_one(tiny_cnn, images) -> None:
    first_conv = StandInTargetLayer(tiny_cnn.features[2], "cnn", 0)
    auto = explain(tiny_cnn, images, method="gradcam")
    manual = explain(tiny_cnn, images, method="gradcam", layer=first_conv)
    assert (auto.layer, manual.layer) == ("features", "features.2")
    assert not torch.allclose(auto.maps, manual.maps)


def test_target_defaults_to_prediction_and_can_be_set(tiny_cnn, images) -> None:
    with torch.no_grad():
        probs = tiny_cnn(images).softmax(1)
    att = explain(tiny_cnn, images, method="gradcam")
    assert att.targets == att.predicted == tuple(probs.argmax(1).tolist())
    assert att.scores == pytest.approx(probs.max(1).values.tolist())

    per_image = explain(tiny_cnn, images, method="gradcam", target=[2, 0])
    assert per_image.targets == (2, 0)
    assert per_image.target_scores == pytest.approx([float(probs[0, 2]), float(probs[1, 0])])
    assert explain(tiny_cnn, images, method="gradcam", target=1).targets == (1, 1)


def test_other_targets_give_other_maps(tiny_cnn, images) -> None:
    a = explain(tiny_cnn, images, method="integrated-gradients", target=0, steps=8)
    b = explain(tiny_cnn, images, method="integrated-gradients", target=1, steps=8)
    assert not torch.allclose(a.maps, b.maps)


def test_unknown_method_lists_the_methods(tiny_cnn, images) -> None:
    with pytest.raises(ConfigError) as info:
        explain(tiny_cnn, images, method="gradcamm")
    message = str(info.value)
    assert "'gradcam'" in message  # the close match
    for name in METHODS:
        assert name in message


def test_unknown_option_and_bad_values_are_config_errors(tiny_cnn, images) -> None:
    with pytest.raises(ConfigError, match="samples"):
        explain(tiny_cnn, images, method="smoothgrad", sample=4)
    with pytest.raises(ConfigError, match="no option"):
        explain(tiny_cnn, images, method="gradcam", steps=3)
    with pytest.raises(ConfigError, match="out of range"):
        explain(tiny_cnn, images, method="smoothgrad", target=3, samples=2)
    with pytest.raises(ConfigError, match="one per image"):
        explain(tiny_cnn, images, method="smoothgrad", target=[0, 1, 2], samples=2)
    with pytest.raises(ConfigError, match="window"):
        explain(tiny_cnn, images, method="occlusion", window=64)


def test_bad_images_are_data_errors(tiny_cnn) -> None:
    with pytest.raises(DataError, match="batch dimension"):
        explain(tiny_cnn, torch.zeros(3, IMG, IMG), method="smoothgrad")
    with pytest.raises(DataError, match="empty"):
        explain(tiny_cnn, torch.zeros(0, 3, IMG, IMG), method="smoothgrad")


def test_layer_outside_the_model_is_rejected(tiny_cnn, images) -> None:
    with pytest.raises(ConfigError, match="not a submodule"):
        explain(tiny_cnn, images, method="gradcam", layer=torch.nn.Conv2d(3, 3, 1))


def test_plain_modules_need_an_explicit_layer(images) -> None:
    plain = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    plain(images)  # materialise the lazy layer
    with pytest.raises(ModelError, match="Pass layer="):
        explain(plain, images, method="gradcam")
    assert explain(plain, images, method="gradcam", layer=plain[1]).layer == "1"


def test_model_mode_and_weights_are_left_alone(tiny_cnn, images) -> None:
    tiny_cnn.train()
    before = {k: v.clone() for k, v in tiny_cnn.state_dict().items()}
    explain(tiny_cnn, images, method="gradcam")
    assert tiny_cnn.training
    assert all(torch.equal(before[k], v) for k, v in tiny_cnn.state_dict().items())
    assert all(p.grad is None for p in tiny_cnn.parameters())


def test_to_dict_is_json_without_maps_unless_asked(tiny_cnn, images) -> None:
    att = explain(tiny_cnn, images, method="gradcam")
    summary = att.to_dict()
    json.dumps(summary)
    assert summary["method"] == "gradcam" and summary["shape"] == [2, IMG, IMG]
    assert "map" not in summary["images"][0]
    peak = summary["images"][0]["peak"]
    assert float(att.maps[0, peak[0], peak[1]]) == 1.0
    full = att.to_dict(include_maps=True)
    assert torch.tensor(full["images"][1]["map"]).equal(att.maps[1])


def test_normalize_maps_handles_flat_and_non_finite_maps() -> None:
    maps = torch.tensor([[[1.0, 3.0], [2.0, 5.0]], [[4.0, 4.0], [4.0, 4.0]], [[float("nan"), 1.0], [0.0, 2.0]]])
    out = normalize_maps(maps)
    assert out[0].tolist() == [[0.0, 0.5], [0.25, 1.0]]
    assert out[1].eq(0).all()
    assert out[2].tolist() == [[0.0, 0.5], [0.0, 1.0]]
