"""Multi-label data: path,labels manifests, multi-hot SampleLists, iterative-stratification splits, batches."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imgclf import data as D
from imgclf.config import DataConfig
from imgclf.errors import ConfigError, DataError

from .conftest import noise, write_bad

CFG = DataConfig(input_size=16, resize_size=18)


def _images(folder: Path, n: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        Image.fromarray(noise(8, 8, seed=i)).save(folder / f"im{i:03d}.png")
        names.append(f"im{i:03d}.png")
    return names


def _manifest(tmp_path: Path, header: str, cells: list[str], splits: list[str] | None = None) -> Path:
    names = _images(tmp_path, len(cells))
    lines = [header]
    for i, (name, cell) in enumerate(zip(names, cells, strict=True)):
        lines.append(f"{name},{cell}" + (f",{splits[i]}" if splits else ""))
    path = tmp_path / "tags.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _random_cells(n: int, seed: int) -> list[str]:
    """Cells over classes a..e with different frequencies (e rare), some rows without labels."""
    rng = np.random.default_rng(seed)
    freq = {"a": 0.5, "b": 0.35, "c": 0.2, "d": 0.12, "e": 0.05}
    return [";".join(c for c, f in freq.items() if rng.random() < f) for _ in range(n)]


# -- manifests -----------------------------------------------------------------------------------------------------
def test_labels_column_gives_multi_hot_targets_and_keeps_the_given_splits(tmp_path: Path) -> None:
    cells = ["cat;dog", "dog", "", " cat ; bird", "bird;cat;dog", "dog", "cat"]
    path = _manifest(tmp_path, "path,labels,split", [f'"{c}"' for c in cells],
                     ["train", "train", "train", "train", "val", "test", "test"])  # fmt: skip
    splits = D.load_source(path)
    assert splits.task == "multilabel" and splits.classes == ("bird", "cat", "dog")
    assert splits.train.is_multilabel and (len(splits.train), len(splits.val), len(splits.test)) == (4, 1, 2)
    assert splits.train.multi_hot.tolist() == [[0, 1, 1], [0, 0, 1], [0, 0, 0], [1, 1, 0]]
    image, target = splits.train[0]
    assert image.mode == "RGB" and target.dtype == np.float32 and target.tolist() == [0.0, 1.0, 1.0]
    assert splits.val.targets(0).tolist() == [1.0, 1.0, 1.0]
    # Stratum for samplers: the rarest positive class in this list; 3 (= C) for the image without labels.
    assert splits.train.labels == [1, 2, 3, 0]
    train_info = splits.info["splits"]["train"]
    assert train_info["counts"] == {"bird": 1, "cat": 2, "dog": 2} and train_info["no_labels"] == 1
    assert splits.info["task"] == "multilabel" and splits.to_dict()["task"] == "multilabel"
    written = json.loads(D.write_split(tmp_path / "split.json", splits).read_text())
    assert written["task"] == "multilabel"
    assert written["samples"]["train"][:3] == [["im000.png", ["cat", "dog"]], ["im001.png", ["dog"]], ["im002.png", []]]
    again = D.load_source(path)
    assert again.info["fingerprint"] == splits.info["fingerprint"]


def test_label_column_with_a_separator_switches_to_multilabel_and_task_forces_the_kind(tmp_path: Path) -> None:
    path = _manifest(tmp_path, "path,label", ["a", "a;b", "b", "b", "a", "a;b"] * 3)
    splits = D.load_source(path, seed=0)
    assert splits.task == "multilabel" and splits.classes == ("a", "b")
    with pytest.raises(DataError, match=r"line 3: label 'a;b' lists several labels but task='single'"):
        D.load_source(path, task="single")
    single = _manifest(tmp_path / "single", "path,label", ["a", "b"] * 5)
    assert D.load_source(single).task == "single"
    forced = D.load_source(single, task="multilabel", val_fraction=0.2, test_fraction=0.2, seed=1)
    assert forced.task == "multilabel" and sum(len(s) for _, s in forced.items()) == 10
    for _, s in forced.items():  # one-hot: image i has class "ab"[i % 2]
        expected = [[1 - int(Path(p).stem[2:]) % 2, int(Path(p).stem[2:]) % 2] for p in s.paths]
        assert s.multi_hot.tolist() == expected
    with pytest.raises(ConfigError, match="task='multi' is not valid"):
        D.load_source(single, task="multi")


def test_folder_source_can_be_forced_multilabel(make_tree: Callable[..., Path]) -> None:
    root = make_tree({"train/cat": 4, "train/dog": 3, "val/cat": 1, "val/dog": 1})
    splits = D.load_source(root, task="multilabel")
    plain = D.load_source(root)
    assert splits.task == "multilabel" and splits.val.multi_hot.tolist() == [[1, 0], [0, 1]]
    assert splits.train.paths == plain.train.paths  # the same split, with one-hot targets
    assert splits.train.multi_hot.tolist() == np.eye(2, dtype=int)[plain.train.labels].tolist()
    assert splits.info["fingerprint"] == plain.info["fingerprint"] and splits.info["splits"]["val"]["no_labels"] == 0


def test_flat_manifest_is_split_by_seeded_iterative_stratification(tmp_path: Path) -> None:
    path = _manifest(tmp_path, "path,labels", _random_cells(300, seed=0))
    splits = D.load_source(path, val_fraction=0.2, test_fraction=0.2, seed=5)
    sizes = [len(s) for _, s in splits.items()]
    assert sum(sizes) == 300 and abs(sizes[1] - 60) <= 6 and abs(sizes[2] - 60) <= 6
    assert splits.info["splits"]["val"]["how"] == "iterative stratified split, seed 5, fraction 0.2"
    every = [p for _, s in splits.items() for p in s.paths]
    assert len(set(every)) == 300  # no image in two splits
    total = sum(s.multi_hot.sum(axis=0) for _, s in splits.items())
    for _, s in splits.items():  # each class keeps its share in every split (within 3 images)
        assert np.all(np.abs(s.multi_hot.sum(axis=0) - total * len(s) / 300) <= 3)
    again = D.load_source(path, val_fraction=0.2, test_fraction=0.2, seed=5)
    other = D.load_source(path, val_fraction=0.2, test_fraction=0.2, seed=6)
    assert again.val.paths == splits.val.paths and other.val.paths != splits.val.paths


def test_train_keeps_every_class_even_a_singleton(tmp_path: Path) -> None:
    cells = ["a", "b", "a;b"] * 6 + ["c"]  # c has one image: it must end up in train
    path = _manifest(tmp_path, "path,labels", cells)
    for seed in range(5):
        splits = D.load_source(path, val_fraction=0.3, test_fraction=0.3, seed=seed)
        assert splits.train.multi_hot.sum(axis=0).min() >= 1


@pytest.mark.parametrize(
    ("header", "cells", "split_col", "message"),
    [
        ("path,labels", ["a;;b", "a"], None, r"line 2: label cell 'a;;b' has an empty class name .* cat;dog"),
        ("path,labels", ["a;b", "b;"], None, r"line 3: label cell 'b;' has an empty class name"),
        ("path,labels,split", ["a", "b", "a;c"], ["train", "train", "test"],
         r"line 4: class 'c' appears in test but in no train row.*add train images labelled 'c'"),
        ("file_name,labels", ["a", "b"], None, r"no 'path' column .*path,labels\[,split\]"),
        ("path,labels,label", ["a,a", "b,b"], None, r"both a 'labels' and a 'label' column"),
        ("path,labels", ["a", "", "a"], None, r"names 1 class \(only 'a'\)"),
    ],
)
def test_bad_multilabel_manifest(tmp_path: Path, header: str, cells: list[str], split_col: list[str] | None,
                                 message: str) -> None:  # fmt: skip
    path = _manifest(tmp_path, header, cells, split_col)
    with pytest.raises(DataError, match=message) as info:
        D.load_source(path)
    assert str(path) in str(info.value)


def test_labels_column_refuses_task_single(tmp_path: Path) -> None:
    path = _manifest(tmp_path, "path,labels", ["a", "b"] * 3)
    with pytest.raises(DataError, match="'labels' column .* task='single'"):
        D.load_source(path, task="single")


def test_unreadable_image_in_a_multilabel_manifest_is_skipped(tmp_path: Path) -> None:
    path = _manifest(tmp_path, "path,labels", ["a", "b", "a;b"] * 4)
    bad = write_bad(tmp_path / "bad")["text"]
    path.write_text(path.read_text() + f"{bad},a\n")
    with pytest.warns(D.DataWarning, match="text.jpg"):
        splits = D.load_source(path)
    assert [p for p, _ in splits.skipped] == [str(bad)] and sum(len(s) for _, s in splits.items()) == 12


# -- SampleList and kfold ------------------------------------------------------------------------------------------
def test_subset_concat_relabel_keep_multi_hot_consistent() -> None:
    arr = np.arange(4 * 8 * 8, dtype=np.uint8).reshape(4, 8, 8)
    multi = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 0, 1]], np.uint8)
    base = D.SampleList.from_arrays(arr, name="toy", multi_hot=multi)
    part = base.subset([3, 1])
    assert part.multi_hot.tolist() == [[0, 0, 1], [1, 1, 0]] and part.describe(0) == "toy[3]"
    assert np.array_equal(np.asarray(part[0][0])[..., 0], arr[3]) and part[0][1].tolist() == [0, 0, 1]
    both = D.SampleList.concat([part, base.subset([2])])
    assert both.multi_hot.tolist() == [[0, 0, 1], [1, 1, 0], [0, 0, 0]] and both.labels == [2, 0, 3]
    moved = both.relabel([2, 0, 1])  # class 0 -> column 2, 1 -> 0, 2 -> 1
    assert moved.multi_hot.tolist() == [[0, 1, 0], [1, 0, 1], [0, 0, 0]]
    assert both.relabel([0, 1, 2], num_classes=5).multi_hot.shape == (3, 5)
    with pytest.raises(ValueError, match="mix single-label and multi-label"):
        D.SampleList.concat([part, D.SampleList.from_arrays(arr, [0, 1, 0, 1], name="toy")])
    with pytest.raises(ValueError, match="0/1 array"):
        D.SampleList.from_paths(["x.png"], multi_hot=[[2, 0]])
    with pytest.raises(ValueError, match="exactly one of labels"):
        D.SampleList.from_paths(["x.png"], [0], multi_hot=[[1, 0]])
    assert not base.multi_hot.flags.writeable  # nobody changes a list's targets under it


def test_balanced_sampler_over_strata_oversamples_the_rare_class() -> None:
    multi = np.zeros((400, 3), np.uint8)
    multi[:, 0] = 1  # every image has class 0
    multi[:20, 2] = 1  # 20 also have the rare class 2
    samples = D.SampleList.from_paths([f"{i}.png" for i in range(400)], multi_hot=multi)
    assert Counter(samples.labels) == {0: 380, 2: 20}
    drawn = Counter(samples.labels[i] for i, _ in D.ResumableSampler(samples.labels, seed=0, balanced=True))
    assert drawn[2] > 150  # about half the draws, against 5% of the data


def test_multilabel_kfold_is_disjoint_and_covers_the_pool(tmp_path: Path) -> None:
    path = _manifest(tmp_path, "path,labels", _random_cells(80, seed=1))
    splits = D.load_source(path, val_fraction=0.2, test_fraction=0.1, seed=0)
    pool = len(splits.train) + len(splits.val)
    folds = [D.kfold(splits, 4, f, seed=2) for f in range(4)]
    seen = [p for f in folds for p in f.val.paths]
    assert len(seen) == len(set(seen)) == pool
    assert all(f.task == "multilabel" and f.test is splits.test for f in folds)
    assert all(abs(len(f.val) - pool / 4) <= 2 for f in folds)


# -- batches -------------------------------------------------------------------------------------------------------
def test_collate_gives_float_targets_for_multilabel_and_long_for_single() -> None:
    x = torch.zeros(3, 4, 4)
    multi = D.collate_skip_bad([(x, np.array([1, 0, 1], np.float32), 0), None, (x, np.zeros(3, np.float32), 5)])
    assert multi.labels.dtype == torch.float32 and multi.labels.tolist() == [[1, 0, 1], [0, 0, 0]]
    assert multi.skipped == 1 and multi.indices.tolist() == [0, 5]
    single = D.collate_skip_bad([(x, 2, 0), (x, 1, 1)])
    assert single.labels.dtype == torch.long and single.labels.tolist() == [2, 1]
    empty = D.collate_skip_bad([None], num_labels=3)
    assert empty.labels.shape == (0, 3) and empty.labels.dtype == torch.float32


def test_loader_over_multilabel_samples_yields_b_by_c_float_labels(tmp_path: Path) -> None:
    names = _images(tmp_path, 5)
    bad = write_bad(tmp_path / "bad")["empty"]
    multi = np.array([[1, 0], [0, 1], [1, 1], [0, 0], [1, 0]], np.uint8)
    samples = D.SampleList.from_paths([str(tmp_path / n) for n in names[:4]] + [str(bad)], multi_hot=multi)
    ds = D.IndexedDataset(samples, D.build_eval_transform(CFG))
    loader = D.make_loader(ds, D.ResumableSampler(samples.labels, seed=0, shuffle=False), 4, workers=0)
    with pytest.warns(D.DataWarning, match="empty.jpg"):
        first, last = list(loader)
    assert first.labels.dtype == torch.float32 and first.labels.tolist() == multi[:4].tolist()
    assert first.images.shape == (4, 3, 16, 16)
    assert last.skipped == 1 and last.labels.shape == (0, 2)  # a batch of only bad images keeps its C


def test_mixup_mixes_multi_hot_targets_like_the_images() -> None:
    torch.manual_seed(0)
    y = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    images = y[:, :1, None, None].expand(4, 3, 2, 2).clone()  # each image's pixels = its first target
    mixed, targets = D.mixup_cutmix(3, 0.4, 0.0)(images, y)
    assert targets.shape == (4, 3) and targets.dtype == torch.float32
    lam = None
    for i in range(4):  # the same convex combination of two rows, for pixels and targets
        j = (i - 1) % 4
        if lam is None and y[i, 0] != y[j, 0]:
            lam = float((mixed[i, 0, 0, 0] - y[j, 0]) / (y[i, 0] - y[j, 0]))
    assert lam is not None
    torch.testing.assert_close(targets, lam * y + (1 - lam) * y.roll(1, 0))


# -- real-data builders --------------------------------------------------------------------------------------------
@pytest.mark.real
def test_mnist_multilabel_builder_gives_a_loadable_manifest(mnist_dir: Path, tmp_path: Path) -> None:
    from tests.realsets import mnist_multilabel_manifest

    manifest = mnist_multilabel_manifest(mnist_dir, tmp_path / "mnist-ml", n_train=60, n_test=20, seed=0)
    assert mnist_multilabel_manifest(mnist_dir, tmp_path / "mnist-ml", n_train=60, n_test=20, seed=0) == manifest
    splits = D.load_source(manifest, val_fraction=0.2, seed=0)
    assert splits.task == "multilabel" and splits.classes == tuple("0123456789")
    assert (len(splits.train) + len(splits.val), len(splits.test)) == (60, 20)
    for _, samples in splits.items():
        counts = samples.multi_hot.sum(axis=1)
        assert counts.min() >= 1 and counts.max() <= 3  # 2-3 digits, repeats counted once
        image, target = samples[0]
        arr = np.asarray(image)[..., 0]
        assert image.size == (56, 56) and target.sum() == counts[0]
        inked = sum(arr[t : t + 28, s : s + 28].max() > 0 for t in (0, 28) for s in (0, 28))
        assert counts[0] <= inked <= 3  # one quadrant per placed digit, never overlapping


def test_cifar_hierarchy_yaml_matches_the_cifar10_classes(tmp_path: Path) -> None:
    from tests.realsets import cifar_hierarchy_yaml

    from imgclf.config import load_hierarchy

    classes = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    h = load_hierarchy(cifar_hierarchy_yaml(tmp_path / "h.yaml"), classes)
    assert h.root == "root" and h.children("root") == ("vehicle", "animal") and h.parent("frog") == "animal"
