"""Transform presets and MixUp/CutMix: shapes, normalisation, repeatability, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from imgclf import data as D
from imgclf.config import DataConfig
from imgclf.errors import ConfigError

CFG = DataConfig(input_size=32, resize_size=40, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.5))


def _photo() -> Image.Image:
    arr = np.random.default_rng(0).integers(0, 256, size=(48, 64, 3), dtype=np.uint8)  # (H, W, 3), not square
    return Image.fromarray(arr)


def test_eval_transform_normalises_exactly() -> None:
    out = D.build_eval_transform(CFG)(Image.new("RGB", (50, 70), (255, 102, 0)))
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32
    expected = (torch.tensor([1.0, 0.4, 0.0]) - torch.tensor(CFG.mean)) / torch.tensor(CFG.std)
    torch.testing.assert_close(out.mean(dim=(1, 2)), expected, atol=1e-4, rtol=0)


def test_eval_transform_resizes_shorter_side_then_center_crops() -> None:
    arr = np.zeros((40, 80, 3), np.uint8)  # (H, W): a wide image, bright strip at the far left only
    arr[:, :10] = 255
    out = D.build_eval_transform(DataConfig(input_size=32, resize_size=40, mean=(0, 0, 0), std=(1, 1, 1)))(
        Image.fromarray(arr)
    )
    assert out.shape == (3, 32, 32)
    assert out.max() < 0.05  # shorter side 40 kept, width 80 center-cropped: the left strip is cut away


@pytest.mark.parametrize("preset", D.AUGMENT_PRESETS)
def test_presets_give_normalised_tensors_of_the_input_size(preset: str) -> None:
    transform = D.build_train_transform(CFG, preset)
    torch.manual_seed(0)
    a = transform(_photo())
    torch.manual_seed(0)
    b = transform(_photo())
    assert a.shape == (3, 32, 32) and a.dtype == torch.float32
    torch.testing.assert_close(a, b)  # all randomness comes from torch's generator


def test_none_preset_is_the_eval_transform_and_random_presets_vary() -> None:
    photo = _photo()
    torch.testing.assert_close(D.build_train_transform(CFG, "none")(photo), D.build_eval_transform(CFG)(photo))
    standard = D.build_train_transform(CFG, "standard")
    outs = [standard(photo) for _ in range(4)]
    assert any(not torch.equal(outs[0], o) for o in outs[1:])


def test_preset_contents() -> None:
    def kinds(preset: str, **kw: bool) -> list[type]:
        return [type(t) for t in D.build_train_transform(CFG, preset, **kw).transforms]

    assert v2.RandomHorizontalFlip in kinds("light") and v2.RandomHorizontalFlip not in kinds("light", hflip=False)
    assert v2.ColorJitter not in kinds("light") and v2.ColorJitter in kinds("standard")
    strong = kinds("strong")
    assert v2.TrivialAugmentWide in strong and strong[-1] is v2.RandomErasing  # erasing after Normalize
    assert strong.index(v2.Normalize) < strong.index(v2.RandomErasing)
    crop = D.build_train_transform(CFG, "light").transforms[0]
    assert isinstance(crop, v2.RandomResizedCrop) and crop.scale == (0.6, 1.0)
    assert D.build_train_transform(CFG, "standard").transforms[0].scale == (0.25, 1.0)


def test_flip_preset_is_the_eval_view_or_its_mirror() -> None:
    """``flip`` (short runs on small images) keeps the eval geometry: every output is the eval tensor or its mirror."""
    from PIL import Image

    gen = torch.Generator().manual_seed(0)
    image = Image.fromarray((torch.rand(28, 28, 3, generator=gen) * 255).byte().numpy())
    reference = D.build_eval_transform(CFG)(image)  # (3, S, S)
    flip = D.build_train_transform(CFG, "flip")
    seen = set()
    for seed in range(12):
        torch.manual_seed(seed)
        out = flip(image)
        same, mirrored = torch.allclose(out, reference), torch.allclose(out, reference.flip(-1))
        assert same or mirrored
        seen.add(same)
    assert seen == {True, False}  # both views occur
    torch.manual_seed(0)
    assert all(torch.allclose(D.build_train_transform(CFG, "flip", hflip=False)(image), reference) for _ in range(4))


def test_shift_preset_translates_the_eval_view_by_at_most_the_shift() -> None:
    """``shift`` = the eval view moved by up to shift_pixels (borders reflected), mirrored half the time: the same
    augmentation data.cache=memory applies to stored tensors."""
    gen = torch.Generator().manual_seed(0)
    image = Image.fromarray((torch.rand(28, 28, 3, generator=gen) * 255).byte().numpy())
    reference = D.build_eval_transform(CFG)(image)  # (3, 32, 32)
    r = D.shift_pixels(32)
    padded = torch.nn.functional.pad(reference[None], (r, r, r, r), mode="reflect")[0]
    crops = {(dy, dx): padded[:, dy : dy + 32, dx : dx + 32] for dy in range(2 * r + 1) for dx in range(2 * r + 1)}
    views = {(*k, m): v.flip(-1) if m else v for k, v in crops.items() for m in (False, True)}
    seen = set()
    for seed in range(16):
        torch.manual_seed(seed)
        out = D.build_train_transform(CFG, "shift")(image)
        match = [k for k, v in views.items() if torch.allclose(out, v, atol=1e-5)]
        assert match, "not a translated (and possibly mirrored) eval view"
        seen.add(match[0])
    assert len({k[:2] for k in seen}) >= 4 and {k[2] for k in seen} == {False, True}


def test_small_preset_crops_less_than_standard() -> None:
    crop = D.build_train_transform(CFG, "small").transforms[0]
    assert isinstance(crop, v2.RandomResizedCrop) and crop.scale == (0.35, 1.0)
    assert v2.ColorJitter not in [type(t) for t in D.build_train_transform(CFG, "small").transforms]


def test_unknown_preset_lists_presets() -> None:
    presets = "none, flip, shift, light, small, standard, strong"
    with pytest.raises(ConfigError, match=rf"'strnog'.*Did you mean 'strong'.*{presets}"):
        D.build_train_transform(CFG, "strnog")


def test_mixup_cutmix() -> None:
    assert D.mixup_cutmix(3, 0.0, 0.0) is None
    images = torch.rand(8, 3, 16, 16)  # (B, C, H, W)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    for alphas in ((0.4, 0.0), (0.0, 1.0), (0.4, 1.0)):
        mix = D.mixup_cutmix(3, *alphas)
        torch.manual_seed(1)
        out, targets = mix(images, labels)
        assert out.shape == images.shape and targets.shape == (8, 3)
        torch.testing.assert_close(targets.sum(1), torch.ones(8))
        assert not torch.equal(out, images)
        assert (targets.max(1).values < 1).all()  # soft targets: every row mixes two labels
    with pytest.raises(ConfigError, match="must be >= 0"):
        D.mixup_cutmix(3, -0.1, 0.0)
