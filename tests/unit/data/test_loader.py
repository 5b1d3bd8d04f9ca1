"""Deterministic, resumable loading: sampler order, skip(), DDP shards, balancing, item-seeded augmentation."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imgclf import data as D
from imgclf.config import DataConfig
from imgclf.errors import DataError

from .conftest import noise, write_bad

CFG = DataConfig(input_size=16, resize_size=18)


def _labels(n: int = 30) -> list[int]:
    return [i % 3 for i in range(n)]


# -- ResumableSampler ----------------------------------------------------------------------------------------------
def test_same_seed_and_epoch_give_the_same_order() -> None:
    a, b = D.ResumableSampler(_labels(), seed=7), D.ResumableSampler(_labels(), seed=7)
    a.set_epoch(2)
    b.set_epoch(2)
    first = list(a)
    assert first == list(b) == list(a)
    assert sorted(i for i, _ in first) == list(range(30))  # a permutation
    b.set_epoch(3)
    assert [i for i, _ in b] != [i for i, _ in first]
    other_seed = D.ResumableSampler(_labels(), seed=8)
    assert [i for i, _ in other_seed] != [i for i, _ in D.ResumableSampler(_labels(), seed=7)]
    seeds = [s for _, s in first]
    assert len(set(seeds)) == 30  # every position its own augmentation seed
    unshuffled = D.ResumableSampler(_labels(), seed=7, shuffle=False)
    assert [i for i, _ in unshuffled] == list(range(30)) and len(unshuffled) == 30


def test_skip_resumes_at_the_tail_of_the_full_order() -> None:
    sampler = D.ResumableSampler(_labels(), seed=1)
    sampler.set_epoch(4)
    full = list(sampler)
    sampler.skip(12)
    assert list(sampler) == full[12:]  # same indices and same item seeds
    assert list(sampler) == full  # skip applies to one iteration only
    sampler.skip(100)
    assert list(sampler) == [] and len(sampler) == 30


@pytest.mark.parametrize(("n", "world"), [(12, 3), (10, 4)])
def test_distributed_shards_are_disjoint_and_cover_everything(n: int, world: int) -> None:
    single = D.ResumableSampler(_labels(n), seed=5)
    single.set_epoch(1)
    order = single.global_order()
    shards = []
    for rank in range(world):
        s = D.ResumableSampler(_labels(n), seed=5, rank=rank, world_size=world)
        s.set_epoch(1)
        shards.append(list(s))
        assert len(s) == len(shards[-1]) == -(-n // world)
    everything = [i for shard in shards for i, _ in shard]
    assert set(everything) == set(range(n))
    assert len(everything) == world * -(-n // world)  # padded by repeating the start of the order
    seeds = [seed for shard in shards for _, seed in shard]
    assert len(set(seeds)) == len(seeds)  # positions, hence item seeds, never shared between ranks
    if n % world == 0:
        assert all(not set(a) & set(b) for k, a in enumerate(shards) for b in shards[k + 1 :])
        assert [i for i, _ in shards[1]] == order[1::world]
        assert shards[1] == list(single)[1::world]  # same item seeds as a single process at those positions


def test_balanced_sampler_roughly_equalises_classes() -> None:
    labels = [0] * 900 + [1] * 100
    sampler = D.ResumableSampler(labels, seed=0, balanced=True)
    drawn = Counter(labels[i] for i, _ in sampler)
    assert sum(drawn.values()) == 1000
    assert 400 <= drawn[1] <= 600  # ~500 instead of 100
    again = D.ResumableSampler(labels, seed=0, balanced=True)
    assert list(again) == list(sampler)


# -- IndexedDataset, collate, loader --------------------------------------------------------------------------------
@pytest.fixture
def samples(tmp_path: Path) -> D.SampleList:
    paths = []
    for i in range(12):
        paths.append(tmp_path / f"{i:02d}.png")
        Image.fromarray(noise(20, 24, seed=i)).save(paths[-1])
    return D.SampleList.from_paths([str(p) for p in paths], _labels(12))


def test_item_seed_alone_decides_the_augmentation(samples: D.SampleList) -> None:
    ds = D.IndexedDataset(samples, D.build_train_transform(CFG, "strong"))
    state = torch.get_rng_state()
    a, label, index = ds[(3, 1234)]
    torch.manual_seed(999)  # the global RNG does not matter
    b, _, _ = ds[(3, 1234)]
    c, _, _ = ds[(3, 4321)]
    assert (label, index) == (0, 3) and a.shape == (3, 16, 16)
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)
    torch.manual_seed(999)
    expected = torch.rand(1)
    torch.manual_seed(999)
    ds[(5, 1)]
    assert torch.equal(torch.rand(1), expected)  # ...and is left untouched
    torch.set_rng_state(state)
    torch.testing.assert_close(ds[3][0], ds[(3, 0)][0])  # plain int index = item seed 0


def _run(loader: torch.utils.data.DataLoader) -> tuple[torch.Tensor, torch.Tensor]:
    batches = list(loader)
    return torch.cat([b.images for b in batches]), torch.cat([b.indices for b in batches])


def test_workers_do_not_change_the_augmented_tensors(samples: D.SampleList) -> None:
    ds = D.IndexedDataset(samples, D.build_train_transform(CFG, "strong"))
    sampler = D.ResumableSampler(samples.labels, seed=3)
    sampler.set_epoch(1)
    images0, idx0 = _run(D.make_loader(ds, sampler, 4, workers=0))
    loader2 = D.make_loader(ds, sampler, 4, workers=2)
    assert loader2.persistent_workers and not loader2.pin_memory
    images2, idx2 = _run(loader2)
    assert images0.shape == (12, 3, 16, 16)
    assert torch.equal(idx0, idx2)
    torch.testing.assert_close(images0, images2, rtol=0, atol=0)
    sampler.skip(4)  # resume after the first batch: the same tensors as the tail
    images_r, idx_r = _run(D.make_loader(ds, sampler, 4, workers=0))
    assert torch.equal(idx_r, idx0[4:]) and torch.equal(images_r, images0[4:])


def test_truncated_image_is_skipped_at_load_time(tmp_path: Path, samples: D.SampleList) -> None:
    bad = write_bad(tmp_path / "bad")["truncated"]
    mixed = D.SampleList.from_paths([*samples.paths[:3], str(bad)], [0, 1, 2, 1])
    ds = D.IndexedDataset(mixed, D.build_eval_transform(CFG))
    with pytest.warns(D.DataWarning, match=r"truncated\.jpg: truncated image data"):
        assert ds[(3, 0)].index == 3 and ds[(3, 0)].reason
    loader = D.make_loader(ds, D.ResumableSampler(mixed.labels, seed=0, shuffle=False), 4, workers=0)
    (batch,) = list(loader)  # warned once already: no second warning needed
    assert batch.skipped == 1 and batch.images.shape == (3, 3, 16, 16)
    assert batch.indices.tolist() == [0, 1, 2] and batch.labels.tolist() == [0, 1, 2]


def test_collate_of_only_bad_items_is_an_empty_batch() -> None:
    batch = D.collate_skip_bad([None, None])
    assert batch.images.shape[0] == 0 and batch.labels.shape == (0,) and batch.skipped == 2
    assert batch.to_dict()["skipped"] == 2


def test_default_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    for cpus, expected in ((1, 1), (2, 1), (3, 2), (6, 5), (64, 8)):  # one core kept for the main process
        monkeypatch.setattr(os, "sched_getaffinity", lambda _pid, n=cpus: set(range(n)))
        assert D.default_workers() == expected
    ds = D.IndexedDataset(D.SampleList.from_arrays(np.zeros((2, 4, 4), np.uint8), [0, 1], name="x"), lambda im: im)
    sampler = D.ResumableSampler([0, 1], seed=0)
    assert D.make_loader(ds, sampler, 2).num_workers == 8  # the default follows the (patched) core count
    loader = D.make_loader(ds, sampler, 2, workers=0, device_type="cuda")
    assert loader.pin_memory and not loader.persistent_workers


def test_class_counts_and_imbalance() -> None:
    assert D.class_counts([0, 2, 2, 2], 4) == [1, 0, 3, 0]
    assert D.imbalance_ratio([0, 2, 2, 2]) == 3.0
    assert D.imbalance_ratio([]) == 1.0
    with pytest.raises(DataError, match="labels must be in"):
        D.class_counts([5], 3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_loader_pins_batches(samples: D.SampleList) -> None:
    loader = D.make_loader(D.IndexedDataset(samples, D.build_eval_transform(CFG)),
                           D.ResumableSampler(samples.labels, seed=0), 4, workers=0, device_type="cuda")  # fmt: skip
    batch = next(iter(loader))
    assert isinstance(batch, D.Batch) and batch.images.is_pinned() and batch.labels.is_pinned()
