"""The 15 ImageNet-C corruptions: validity, determinism, strength rising with severity, and a few definitions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from imgclf.errors import ConfigError, DataError
from imgclf.robustness import CORRUPTIONS, SEVERITIES, CorruptionReport, corrupt, corruption_accuracy
from imgclf.robustness._registry import build_registry

from .conftest import Trained

IMAGENET_C = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)  # fmt: skip
RANDOM = {"gaussian_noise", "shot_noise", "impulse_noise", "glass_blur", "motion_blur", "snow", "frost", "fog",
          "elastic_transform"}  # fmt: skip


def scenes(n: int, size: int, seed: int = 0, channels: int = 3, width: int | None = None) -> torch.Tensor:
    """Natural-looking pixel images ``(n, C, size, width)``: a smooth colour field, a few flat rectangles
    (edges) and a little sensor noise."""
    width = width or size
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, channels, 4, 4, generator=g)
    x = 0.15 + 0.6 * nn.functional.interpolate(base, size=(size, width), mode="bicubic", align_corners=False)
    for i in range(n):
        for _ in range(4):
            top, left = (
                torch.randint(0, size * 3 // 4, (1,), generator=g),
                torch.randint(0, width * 3 // 4, (1,), generator=g),
            )
            h, w = torch.randint(size // 8, size // 3, (2,), generator=g).tolist()
            x[i, :, top : top + h, left : left + w] = torch.rand(channels, 1, 1, generator=g)
    return (x + 0.03 * torch.randn(x.shape, generator=g)).clamp(0, 1)


def rms(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).pow(2).mean().sqrt())


def test_the_registry_holds_exactly_the_imagenet_c_corruptions_in_order() -> None:
    assert tuple(CORRUPTIONS) == IMAGENET_C
    assert SEVERITIES == (1, 2, 3, 4, 5)
    with pytest.raises(TypeError):
        CORRUPTIONS["mine"] = CORRUPTIONS["fog"]  # type: ignore[index]


def test_a_duplicate_registry_name_raises() -> None:
    with pytest.raises(ConfigError, match="registered twice"):
        build_registry("corruption", [("fog", lambda x: x), ("fog", lambda x: x)])


@pytest.mark.parametrize("size", [28, 64])
@pytest.mark.parametrize("name", IMAGENET_C)
def test_every_corruption_is_valid_deterministic_and_stronger_at_each_severity(name: str, size: int) -> None:
    x = scenes(8, size)
    strengths = []
    for severity in SEVERITIES:
        out = corrupt(x, name, severity, seed=0)
        assert out.shape == x.shape and out.dtype == x.dtype
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
        assert torch.equal(out, corrupt(x, name, severity, seed=0)), "not deterministic for a fixed seed"
        strengths.append(rms(out, x))
    assert strengths[0] > 0.005, f"severity 1 barely changes the image: RMS {strengths[0]:.5f}"
    assert all(b > a for a, b in zip(strengths, strengths[1:])), f"strength does not rise with severity: {strengths}"


@pytest.mark.parametrize("name", IMAGENET_C)
def test_the_seed_matters_exactly_for_the_random_corruptions(name: str) -> None:
    x = scenes(2, 32)
    same = torch.equal(corrupt(x, name, 3, seed=0), corrupt(x, name, 3, seed=1))
    assert same == (name not in RANDOM)
    from_generator = corrupt(x, name, 3, generator=np.random.default_rng(1))
    assert torch.equal(from_generator, corrupt(x, name, 3, seed=1))


@pytest.mark.parametrize("name", IMAGENET_C)
def test_corruptions_take_one_image_grey_images_and_non_square_images(name: str) -> None:
    one = scenes(1, 32)[0]
    assert corrupt(one, name, 2).shape == one.shape
    grey = scenes(2, 28, channels=1, width=40)
    out = corrupt(grey, name, 5, seed=3)
    assert out.shape == (2, 1, 28, 40) and float(out.min()) >= 0 and float(out.max()) <= 1
    assert rms(out, grey) > 0.005
    assert corrupt(scenes(1, 28).double(), name, 1).dtype == torch.float64


def test_bad_arguments_are_rejected_with_a_hint() -> None:
    x = scenes(1, 28)
    with pytest.raises(ConfigError, match="Did you mean 'gaussian_noise'"):
        corrupt(x, "gaussian_nois", 1)
    for severity in (0, 6, 2.5, True):
        with pytest.raises(ConfigError, match="severity"):
            corrupt(x, "fog", severity)  # type: ignore[arg-type]
    with pytest.raises(DataError, match="pixel images in \\[0, 1\\]"):
        corrupt(x * 255, "fog", 1)
    with pytest.raises(DataError, match="at least 8"):
        corrupt(torch.rand(1, 3, 4, 4), "fog", 1)
    with pytest.raises(DataError, match="\\(B, C, H, W\\)"):
        corrupt(torch.rand(28, 28), "fog", 1)


def test_gaussian_noise_adds_noise_of_the_imagenet_c_standard_deviation() -> None:
    grey = torch.full((4, 3, 64, 64), 0.5)
    for severity, sigma in zip(SEVERITIES[:3], (0.08, 0.12, 0.18)):  # small enough to be rarely clipped
        residual = corrupt(grey, "gaussian_noise", severity) - grey
        assert abs(float(residual.std()) - sigma) < 0.01 and abs(float(residual.mean())) < 0.01


def test_impulse_noise_sets_the_expected_fraction_of_values_to_0_or_1() -> None:
    grey = torch.full((4, 3, 64, 64), 0.5)
    out = corrupt(grey, "impulse_noise", 5)
    hit = out != 0.5
    assert abs(float(hit.float().mean()) - 0.27) < 0.02
    assert bool(((out[hit] == 0) | (out[hit] == 1)).all())


def test_contrast_keeps_each_channel_mean_and_shrinks_deviations() -> None:
    x = scenes(3, 32)
    out = corrupt(x, "contrast", 3)  # factor 0.2
    assert torch.allclose(out.mean(dim=(2, 3)), x.mean(dim=(2, 3)), atol=1e-5)
    centred_in, centred_out = x - x.mean(dim=(2, 3), keepdim=True), out - out.mean(dim=(2, 3), keepdim=True)
    assert torch.allclose(centred_out, 0.2 * centred_in, atol=1e-5)


def test_brightness_raises_the_hsv_value_and_keeps_hue_and_saturation() -> None:
    x = scenes(2, 32) * 0.6  # dark enough that V + 0.3 stays below 1
    out = corrupt(x, "brightness", 3)  # +0.3
    v_in, v_out = x.amax(dim=1), out.amax(dim=1)
    assert torch.allclose(v_out, v_in + 0.3, atol=1e-5)
    ratio_in, ratio_out = x / v_in.unsqueeze(1), out / v_out.unsqueeze(1)  # fixed by hue and saturation
    assert torch.allclose(ratio_in, ratio_out, atol=1e-5)


def test_pixelate_fills_blocks_with_their_mean() -> None:
    x = scenes(1, 28)
    out = corrupt(x, "pixelate", 5)  # 7 blocks per side: exactly 4 x 4 pixels each
    blocks = x.unfold(2, 4, 4).unfold(3, 4, 4).mean(dim=(-1, -2))  # (1, 3, 7, 7)
    assert torch.allclose(out, blocks.repeat_interleave(4, 2).repeat_interleave(4, 3), atol=1e-5)


def test_jpeg_output_lies_on_the_8_bit_grid_and_loses_detail() -> None:
    x = scenes(2, 32)
    out = corrupt(x, "jpeg_compression", 5)
    assert torch.allclose(out * 255, (out * 255).round(), atol=1e-4)
    assert rms(out, x) > rms(corrupt(x, "jpeg_compression", 1), x)


class ConstantModel(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tensor([[1.0, 0.0, 0.0]]).expand(x.shape[0], 3)


def test_corruption_accuracy_of_a_constant_model_equals_its_clean_accuracy() -> None:
    x, y = scenes(10, 16), torch.tensor([0, 1, 2, 0, 0, 1, 2, 0, 1, 1])
    report = corruption_accuracy(ConstantModel(), (x, y), names=["fog", "snow"], severities=(1, 5), batch_size=4)
    assert report.clean_accuracy == 0.4 and report.n == 10 and report.severities == (1, 5)
    assert report.accuracies == {"fog": (0.4, 0.4), "snow": (0.4, 0.4)}
    assert report.mean_corruption_accuracy == pytest.approx(0.4) and report.relative_drop == pytest.approx(0.0)


def test_corruption_accuracy_on_a_trained_model_drops_with_severity(trained: Trained) -> None:
    data = (trained.x[:48], trained.y[:48])
    report = corruption_accuracy(trained.model, data, severities=(1, 3, 5), batch_size=16)
    assert isinstance(report, CorruptionReport) and report.names == IMAGENET_C
    assert report.clean_accuracy == pytest.approx(float((trained.model(data[0]).argmax(1) == data[1]).float().mean()))
    per_severity = report.per_severity()
    assert per_severity[0] > per_severity[-1]
    assert report.mean_corruption_accuracy < report.clean_accuracy and report.relative_drop > 0
    assert report.relative_drop == pytest.approx(1 - report.mean_corruption_accuracy / report.clean_accuracy)
    assert report.accuracies["contrast"][-1] < report.accuracies["contrast"][0]
    again = corruption_accuracy(trained.model, data, severities=(1, 3, 5), batch_size=16)
    assert again == report, "the sweep must repeat for the same seed and data order"
    as_json = json.loads(json.dumps(report.to_dict()))
    assert as_json["per_severity"] == list(per_severity)
    assert set(as_json["per_corruption"]) == set(IMAGENET_C) and as_json["accuracies"]["fog"] == list(
        report.accuracies["fog"]
    )


def test_corruption_accuracy_rejects_unknown_names_and_severities(trained: Trained) -> None:
    data = (trained.x[:4], trained.y[:4])
    with pytest.raises(ConfigError, match="Did you mean 'frost'"):
        corruption_accuracy(trained.model, data, names=["forst"])
    with pytest.raises(ConfigError, match="severities"):
        corruption_accuracy(trained.model, data, severities=(0, 1))
