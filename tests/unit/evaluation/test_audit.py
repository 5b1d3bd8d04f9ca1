"""Data audit: counts, unreadable files, exact and near duplicates, and train/test leakage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imgclf.errors import DataError
from imgclf.evaluation import audit_files

from .conftest import smooth_image, write


def test_exact_copy_across_train_and_test_is_flagged_as_leakage(image_tree: dict) -> None:
    r = audit_files(image_tree["paths"], image_tree["labels"], image_tree["names"])
    exact = [leak for leak in r.leakage if leak.kind == "exact"]
    assert len(exact) == 1
    assert (exact[0].a.split, exact[0].a.path) == ("train", image_tree["exact"][0])
    assert (exact[0].b.split, exact[0].b.path) == ("test", image_tree["exact"][1])
    assert r.has_leakage and r.warnings[0].startswith("LEAKAGE: 1 test image is an exact copy of a train image")
    assert image_tree["exact"][1] in r.warnings[0]
    assert len(r.exact_duplicates) == 1 and r.exact_duplicates[0].splits == ("test", "train")


def test_resized_reencoded_copy_is_a_near_duplicate_and_unrelated_images_are_not(image_tree: dict) -> None:
    r = audit_files(image_tree["paths"], image_tree["labels"], image_tree["names"])
    near = {(n.a.path, n.b.path) for n in r.near_duplicates}
    assert near == {image_tree["near"]}  # the copy is found; none of the 16 unrelated images pair up
    leaks = [leak for leak in r.leakage if leak.kind == "near"]
    assert [(leak.a.path, leak.b.path) for leak in leaks] == [image_tree["near"]]
    assert any(w.startswith("LEAKAGE (near copies, confirmed pixel by pixel)") for w in r.warnings)
    assert audit_files(image_tree["paths"], near_duplicates=False).near_duplicates == ()


def test_unreadable_and_missing_files_are_reported_with_reasons(image_tree: dict) -> None:
    r = audit_files(image_tree["paths"], image_tree["labels"], image_tree["names"])
    bad = {u.file.path: u.reason for u in r.unreadable}
    assert set(bad) == {image_tree["broken"], image_tree["missing"]}
    assert "cannot read the file" in bad[image_tree["missing"]]
    assert "Error" in bad[image_tree["broken"]]  # the decoder's exception type names the problem
    assert {s.name: s.n_unreadable for s in r.splits} == {"train": 0, "test": 2}
    assert any("cannot be read" in w for w in r.warnings)


def test_counts_sizes_modes_and_imbalance(tmp_path: Path) -> None:
    paths = [write(smooth_image(i, size=32 + 8 * (i % 3)), tmp_path / f"{i}.png") for i in range(9)]
    paths.append(write(smooth_image(50).convert("L"), tmp_path / "grey.png"))
    labels = [0] * 8 + [1, 1]
    r = audit_files({"train": paths}, {"train": labels}, ["big", "small", "empty"], near_duplicates=False)
    s = r.splits[0]
    assert s.class_counts == {"big": 8, "small": 2, "empty": 0}
    assert s.imbalance_ratio == pytest.approx(4.0) and s.missing_classes == ("empty",)
    assert r.images.n_readable == 10 and r.images.width == (32, 40.0, 64) and r.images.height[2] == 64
    assert r.images.modes == {"RGB": 9, "L": 1} and r.images.formats == {"PNG": 10}
    assert any("no images of empty" in w for w in r.warnings)
    json.dumps(r.to_dict())  # JSON-ready


def test_same_bytes_with_two_labels_is_a_label_conflict_and_in_split_copies_are_not_leaks(tmp_path: Path) -> None:
    a = write(smooth_image(1), tmp_path / "a.png")
    b = tmp_path / "b.png"
    b.write_bytes(Path(a).read_bytes())
    c = write(smooth_image(2), tmp_path / "c.png")
    r = audit_files({"train": [a, str(b), c]}, {"train": [0, 1, 0]}, ["x", "y"])
    assert not r.has_leakage and r.leakage == ()
    assert len(r.label_conflicts) == 1 and {f.label for f in r.label_conflicts[0].files} == {"x", "y"}
    assert any("different labels" in w for w in r.warnings)
    assert any("redundant exact copy" in w for w in r.warnings)


def test_bad_arguments_raise() -> None:
    with pytest.raises(DataError, match="one label per file"):
        audit_files({"train": ["a.png", "b.png"]}, {"train": [0]})
    with pytest.raises(DataError, match="at least one split"):
        audit_files({})
