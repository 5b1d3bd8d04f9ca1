"""data.cache=memory: decode once, then augmented batches that follow the sampler exactly (resume included)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imgclf import data as D
from imgclf.config import DataConfig, RunConfig, resolve_auto, update
from imgclf.errors import ConfigError

from .conftest import noise

MEAN, STD = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)  # inputs are pixels / 255: easy to compare with the stored ones


def _loader(n: int = 12, batch: int = 4, augment: str = "none", **kw) -> D.MemoryLoader:
    images = torch.from_numpy(np.stack([noise(8, 8, seed=i) for i in range(n)])).permute(0, 3, 1, 2).contiguous()
    sampler = D.ResumableSampler([i % 3 for i in range(n)], seed=3)
    return D.MemoryLoader(images, torch.arange(n) % 3, torch.arange(n), sampler, batch, mean=MEAN, std=STD,
                          augment=augment, **kw)  # fmt: skip


def test_batches_follow_the_sampler_order_and_skip_resumes_mid_epoch() -> None:
    loader = _loader(augment="shift")
    loader.sampler.set_epoch(2)
    full = list(loader)
    order = [i for i, _ in loader.sampler]
    assert torch.cat([b.indices for b in full]).tolist() == order
    loader.sampler.skip(4)  # as the loop does after one batch of 4
    tail = list(loader)
    assert len(tail) == len(full) - 1
    for a, b in zip(full[1:], tail):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


def test_alternating_flip_mirrors_each_image_in_exactly_one_of_two_epochs() -> None:
    loader = _loader(augment="flip")
    stored = loader.images.float() / 255
    seen: dict[int, list[bool]] = {}
    for epoch in (0, 1):
        loader.sampler.set_epoch(epoch)
        for batch in loader:
            for img, idx in zip(batch.images, batch.indices.tolist()):
                same, mirrored = torch.allclose(img, stored[idx]), torch.allclose(img, stored[idx].flip(-1))
                assert same != mirrored
                seen.setdefault(idx, []).append(mirrored)
    assert all(flips in ([True, False], [False, True]) for flips in seen.values())
    assert 0 < sum(flips[0] for flips in seen.values()) < len(seen)  # a random half on the first epoch


def test_shift_translates_by_at_most_the_shift_with_reflected_borders() -> None:
    loader = _loader(n=40, augment="shift", hflip=False)
    stored = loader.images.float() / 255
    r = D.shift_pixels(8)
    offsets = set()
    for batch in loader:
        for img, idx in zip(batch.images, batch.indices.tolist()):
            padded = torch.nn.functional.pad(stored[idx][None], (r, r, r, r), mode="reflect")[0]
            match = [(dy, dx) for dy in range(2 * r + 1) for dx in range(2 * r + 1)
                     if torch.allclose(img, padded[:, dy : dy + 8, dx : dx + 8])]  # fmt: skip
            assert match, f"image {idx} is not a translation of the stored one"
            offsets.add(match[0])
    assert len(offsets) >= 4  # the item seeds spread the offsets


def test_drop_last_only_with_a_full_batch() -> None:
    assert len(_loader(n=10, batch=4, drop_last=True)) == 2 == len(list(_loader(n=10, batch=4, drop_last=True)))
    assert len(_loader(n=3, batch=4, drop_last=True)) == 1  # a tiny set still trains
    assert [len(b.labels) for b in _loader(n=10, batch=4)] == [4, 4, 2]


def test_decode_to_memory_leaves_out_unreadable_files(tmp_path: Path) -> None:
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(3):
            Image.fromarray(noise(20, 12, seed=i)).save(tmp_path / c / f"{i}.png")
    Image.fromarray(noise(64, 64)).save(tmp_path / "a" / "broken.jpg", quality=90)
    data = (tmp_path / "a" / "broken.jpg").read_bytes()
    (tmp_path / "a" / "broken.jpg").write_bytes(data[: len(data) // 2])  # the header reads, the pixels do not
    splits = D.load_source(str(tmp_path), val_fraction=0.0, test_fraction=0.0, seed=0)
    cfg = DataConfig(input_size=8, resize_size=10)
    with pytest.warns(D.DataWarning, match="broken.jpg"):
        images, labels, indices = D.decode_to_memory(splits.train, cfg, workers=0)
    assert images.dtype == torch.uint8 and images.shape[1:] == (3, 8, 8)
    assert len(images) == 6 == len(labels) and len(splits.train) == 7
    expected = D.build_eval_transform(cfg)(splits.train[int(indices[0])][0])  # the eval transform's pixels
    assert torch.allclose(D.normalize(images[0].float() / 255, cfg.mean, cfg.std), expected, atol=1e-5)


def test_memory_cache_refuses_per_image_augmentation_and_auto_picks_shift() -> None:
    with pytest.raises(ConfigError, match="data.cache=none"):
        update(RunConfig(), {"data": {"cache": "memory", "augment": "standard"}})
    cfg = update(RunConfig(), {"data": {"cache": "memory", "img_size": 32}, "train": {"epochs": 30}})
    assert resolve_auto(cfg, train_size=5000, num_classes=10).data.augment == "shift"
    plain = update(RunConfig(), {"data": {"img_size": 32}, "train": {"epochs": 30}})
    assert resolve_auto(plain, train_size=5000, num_classes=10).data.augment == "small"
