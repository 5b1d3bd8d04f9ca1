"""load_source: folder layouts, CSV manifests, built-ins; skipped files; every early, one-line data error."""

from __future__ import annotations

import json
import shutil
import urllib.error
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imgclf import data as D
from imgclf.errors import ConfigError, DataError

from .conftest import noise, write_awkward, write_bad

Tree = Callable[..., Path]


def _names(samples: D.SampleList | None) -> list[str]:
    return [] if samples is None else [Path(samples.describe(i)).name for i in range(len(samples))]


# -- folder layouts ---------------------------------------------------------------------------------------------
def test_flat_folder_is_split_stratified_and_seeded(make_tree: Tree) -> None:
    root = make_tree({"cat": 10, "dog": 20})
    splits = D.load_source(root, val_fraction=0.2, test_fraction=0.1, seed=3)
    assert splits.classes == ("cat", "dog")
    counts = {k: v["counts"] for k, v in splits.info["splits"].items()}
    assert counts == {"train": {"cat": 7, "dog": 14}, "val": {"cat": 2, "dog": 4}, "test": {"cat": 1, "dog": 2}}
    assert splits.info["splits"]["val"]["how"] == "stratified split, seed 3, fraction 0.2"
    assert splits.info["kind"] == "folder" and splits.info["root"] == str(root)
    every = [s.describe(i) for _, s in splits.items() for i in range(len(s))]
    assert len(every) == len(set(every)) == 30  # no image in two splits
    image, label = splits.train[0]
    assert image.mode == "RGB" and splits.classes[label] == Path(splits.train.describe(0)).parent.name

    again = D.load_source(root, val_fraction=0.2, test_fraction=0.1, seed=3)
    other = D.load_source(root, val_fraction=0.2, test_fraction=0.1, seed=4)
    assert _names(again.val) == _names(splits.val) and again.info["fingerprint"] == splits.info["fingerprint"]
    assert splits.val.paths != other.val.paths  # another seed, another split
    json.dumps(splits.to_dict())  # JSON-able


def test_split_layout_uses_given_splits_and_accepts_valid(make_tree: Tree) -> None:
    root = make_tree({"train/cat": 6, "train/dog": 6, "valid/cat": 2, "valid/dog": 1, "test/dog": 3})
    splits = D.load_source(root)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (12, 3, 3)
    assert all(p.startswith(str(root / "valid")) for p in splits.val.paths)
    assert {v["how"] for v in splits.info["splits"].values()} == {"given"}
    assert splits.info["layout"] == "split"


def test_split_layout_without_val_carves_it_from_train_only(make_tree: Tree) -> None:
    root = make_tree({"train/cat": 10, "train/dog": 10, "test/cat": 2, "test/dog": 2})
    splits = D.load_source(root, val_fraction=0.2, seed=1)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (16, 4, 4)
    assert all("/train/" in p for p in splits.val.paths)
    assert splits.info["splits"]["val"]["how"] == "stratified split, seed 1, fraction 0.2"
    no_test = D.load_source(make_tree({"train/a": 4, "train/b": 4}, root.parent / "no_test"))
    assert no_test.test is None and len(no_test.val) == 2


def test_scan_is_sorted_case_insensitive_and_ignores_hidden_and_non_images(make_tree: Tree) -> None:
    root = make_tree({"cat": 2, "dog": 2, "cat/nested": 1})
    Image.fromarray(noise(8, 8)).save(root / "dog" / "UPPER.PNG")
    Image.fromarray(noise(8, 8)).save(root / "dog" / ".hidden.png")
    Image.fromarray(noise(8, 8)).save(root / "dog" / "web.jfif", format="JPEG")  # a JPEG as browsers save it
    (root / "dog" / "notes.txt").write_text("x")
    (root / ".cache").mkdir()
    Image.fromarray(noise(8, 8)).save(root / ".cache" / "junk.png")
    found = D.list_images(root / "dog")
    assert [p.name for p in found] == ["UPPER.PNG", "img_00.png", "img_01.png", "web.jfif"]
    splits = D.load_source(root, val_fraction=0, test_fraction=0)
    assert splits.classes == ("cat", "dog") and len(splits.train) == 7  # nested image counts for its class
    assert splits.val is None and splits.test is None


def test_max_per_class_keeps_first_n_per_class_per_split(make_tree: Tree) -> None:
    root = make_tree({"train/a": 8, "train/b": 5, "val/a": 4, "val/b": 4})
    splits = D.load_source(root, max_per_class=3)
    assert Counter(splits.train.labels) == {0: 3, 1: 3} and Counter(splits.val.labels) == {0: 3, 1: 3}
    assert _names(splits.train)[:3] == ["img_00.png", "img_01.png", "img_02.png"]


def test_fingerprint_follows_files_and_labels(make_tree: Tree, tmp_path: Path) -> None:
    root = make_tree({"a": 3, "b": 3})
    first = D.load_source(root).info["fingerprint"]
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    assert D.load_source(copy).info["fingerprint"] == first  # relative paths: location does not matter
    shutil.move(copy / "a" / "img_00.png", copy / "b" / "moved.png")
    assert D.load_source(copy).info["fingerprint"] != first


def test_write_split_records_every_sample(make_tree: Tree, tmp_path: Path) -> None:
    splits = D.load_source(make_tree({"a": 5, "b": 5}), seed=2)
    out = D.write_split(tmp_path / "run" / "split.json", splits)
    record = json.loads(out.read_text())
    assert record["classes"] == ["a", "b"] and record["info"]["fingerprint"] == splits.info["fingerprint"]
    assert sum(len(v) for v in record["samples"].values()) == 10
    assert record["samples"]["val"][0][0].startswith(("a/", "b/"))


# -- bad files while scanning ------------------------------------------------------------------------------------
def test_bad_files_are_skipped_with_warning_and_recorded(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    bad = write_bad(root / "a")
    awkward = write_awkward(root / "b")
    Image.fromarray(noise(8, 8)).save(root / "a" / "good.png")
    with pytest.warns(D.DataWarning) as caught:
        splits = D.load_source(root, val_fraction=0, test_fraction=0)
    messages = " | ".join(str(w.message) for w in caught)
    skipped = dict(splits.skipped)
    expected = {"empty": "empty file", "text": "not an image", "bomb": "decompression bomb"}
    for kind, reason in expected.items():
        assert str(bad[kind]) in messages
        assert skipped[str(bad[kind])].startswith(reason)
    assert str(bad["truncated"]) not in skipped  # header is fine: caught later, at load time (test_loader)
    assert splits.info["skipped"] == 3
    assert sorted(_names(splits.train)) == sorted(["good.png", "truncated.jpg"] + [p.name for p in awkward.values()])

    with pytest.raises(D.BadImageError, match="bomb.png"):  # sorted order: bomb.png is the first bad file
        D.load_source(root, strict=True)


def test_class_with_only_bad_files_is_an_error(tmp_path: Path, make_tree: Tree) -> None:
    root = make_tree({"a": 2})
    write_bad(root / "b").pop("truncated").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", D.DataWarning)
        with pytest.raises(DataError, match=r"class folder .*/b has no readable images \(3 skipped\)"):
            D.load_source(root)


# -- one clear error before any training ---------------------------------------------------------------------
def test_empty_class_folder(make_tree: Tree) -> None:
    root = make_tree({"cat": 3, "dog": 0})
    with pytest.raises(DataError, match=r"class folder .*dog is empty .*put images in it or remove it"):
        D.load_source(root)


def test_single_class(make_tree: Tree) -> None:
    with pytest.raises(DataError, match=r"one class \(only 'cat'\).*at least two"):
        D.load_source(make_tree({"cat": 3}))


def test_val_class_unknown_to_train(make_tree: Tree) -> None:
    root = make_tree({"train/cat": 2, "train/dog": 2, "val/cat": 1, "val/bird": 1})
    with pytest.raises(DataError, match=r"val class 'bird' .* is not a training class"):
        D.load_source(root)


def test_zero_readable_images(tmp_path: Path) -> None:
    for cls in ("a", "b"):
        (tmp_path / "ds" / cls).mkdir(parents=True)
        (tmp_path / "ds" / cls / "x.jpg").write_bytes(b"")
    with pytest.warns(D.DataWarning), pytest.raises(DataError, match=r"no readable images in .*ds: all 2 files"):
        D.load_source(tmp_path / "ds")


def test_missing_directory_and_unknown_source(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"directory .*missing does not exist"):
        D.load_source(tmp_path / "missing")
    with pytest.raises(DataError, match=r"'digts'.*Did you mean 'digits'.*image-folder directory.*cifar100"):
        D.load_source("digts")
    with pytest.raises(DataError, match="no data source given"):
        D.load_source("")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(DataError, match="not a .csv manifest"):
        D.load_source(tmp_path / "file.txt")
    with pytest.raises(ConfigError, match="val_fraction"):
        D.load_source("digits", val_fraction=1.5)


def test_no_class_folders(tmp_path: Path) -> None:
    (tmp_path / "flat").mkdir()
    Image.fromarray(noise(8, 8)).save(tmp_path / "flat" / "x.png")
    with pytest.raises(DataError, match=r"no class folders \(1 images lie directly in it\)"):
        D.load_source(tmp_path / "flat")


# -- CSV manifests -------------------------------------------------------------------------------------------------
def _manifest(tmp_path: Path, text: str) -> Path:
    for name in ("a1", "a2", "a3", "b1", "b2", "b3"):
        Image.fromarray(noise(8, 8)).save(tmp_path / f"{name}.png")
    path = tmp_path / "labels.csv"
    path.write_text(text)
    return path


def test_csv_manifest_relative_and_absolute_paths(tmp_path: Path) -> None:
    rows = "".join(f"{n}.png,{n[0]}\n" for n in ("a1", "a2", "b1", "b2"))
    path = _manifest(tmp_path, f"filepath,label\n{rows}{tmp_path / 'a3.png'},a\nb3.png,b\n")  # filepath: an alias
    splits = D.load_source(path, val_fraction=0.2, test_fraction=0.2, seed=0)
    assert splits.classes == ("a", "b") and splits.info["kind"] == "csv"
    assert len(splits.train) + len(splits.val) + len(splits.test) == 6
    assert len(splits.val) == 2 and len(splits.test) == 2


def test_csv_split_column_is_honoured(tmp_path: Path) -> None:
    text = "path,label,split\na1.png,a,train\na2.png,a,train\nb1.png,b,train\nb2.png,b,train\na3.png,a,val\n" \
           "b3.png,b,test\n"  # fmt: skip
    splits = D.load_source(_manifest(tmp_path, text))
    assert _names(splits.val) == ["a3.png"] and _names(splits.test) == ["b3.png"]
    assert splits.info["splits"]["val"]["how"] == "given"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("path,category\na1.png,a\n", r"no 'label' column .*path,label\[,split\]"),
        ("name,label\na1.png,a\n", r"no 'path' column"),
        ("path,label\n", "is empty: it has a header but no rows"),
        ("", "is empty"),
        ("path,label\na1.png,a\nmissing.png,b\n", r"line 3: file missing.png does not exist"),
        ("path,label\na1.png,a;;b\n", r"line 2: label cell .* has an empty class name"),
        ("path,label,split\na1.png,a,train\nb1.png,b,holdout\n", "split 'holdout' is not train, val or test"),
        ("path,label,split\na1.png,a,train\nb1.png,b,train\na2.png,c,val\n", "val class 'c'"),
        ("path,label\na1.png,a\na2.png,a\n", "one class"),
    ],
)
def test_bad_csv(tmp_path: Path, text: str, message: str) -> None:
    path = _manifest(tmp_path, text)
    with pytest.raises(DataError, match=message) as info:
        D.load_source(path)
    assert str(path) in str(info.value)


def test_missing_csv_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"manifest .*nope.csv does not exist"):
        D.load_source(tmp_path / "nope.csv")


# -- built-ins ---------------------------------------------------------------------------------------------------
def test_digits_builtin() -> None:
    splits = D.load_source("digits", seed=0)
    assert splits.classes == tuple("0123456789") and splits.info["kind"] == "builtin"
    assert len(splits.train) + len(splits.val) + len(splits.test) == 1797
    assert splits.info["splits"]["test"]["how"] == "stratified split, seed 0, fraction 0.1"
    assert all(abs(n - 18) <= 1 for n in splits.info["splits"]["test"]["counts"].values())  # stratified
    image, label = splits.test[0]
    arr = np.asarray(image)
    assert image.mode == "RGB" and arr.shape == (8, 8, 3) and arr.max() == 255 and 0 <= label < 10
    assert splits.test.paths is None and splits.test.describe(0).startswith("digits[")
    assert D.load_source("DIGITS", seed=0).info["fingerprint"] == splits.info["fingerprint"]


def test_torchvision_builtin_offline_says_how_to_use_a_local_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torchvision.datasets

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(DataError, match=r"could not download mnist .*imgclf train /path/to/mnist"):
        D.load_source("mnist", cache_dir=tmp_path)


def test_torchvision_builtin_uses_official_test_and_carves_val(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets

    class FakeCIFAR:  # what torchvision.datasets.CIFAR10 exposes, without downloading
        classes = ["cat", "dog"]

        def __init__(self, root: str, train: bool, download: bool) -> None:
            assert root == str(tmp_path) and download
            n = 20 if train else 6
            self.data = np.full((n, 4, 4, 3), 7 if train else 9, np.uint8)
            self.targets = [i % 2 for i in range(n)]

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR)
    splits = D.load_source("cifar10", cache_dir=tmp_path, val_fraction=0.2, seed=0)
    assert splits.classes == ("cat", "dog")
    assert (len(splits.train), len(splits.val), len(splits.test)) == (16, 4, 6)
    assert np.asarray(splits.test[0][0])[0, 0].tolist() == [9, 9, 9]
    assert splits.test.describe(5) == "cifar10-test[5]"

    class FakeMNIST(FakeCIFAR):
        def __init__(self, root: str, train: bool, download: bool) -> None:
            self.data = torch.full((8, 5, 5), 200, dtype=torch.uint8)  # MNIST keeps a (N, H, W) tensor
            self.targets = torch.tensor([0, 1] * 4)

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", FakeMNIST)
    image, _ = D.load_source("fashion-mnist", cache_dir=tmp_path).train[0]
    assert image.mode == "RGB" and np.asarray(image)[0, 0].tolist() == [200, 200, 200]
