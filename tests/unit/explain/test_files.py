"""explain_files(): overlay names that never overwrite each other, and the same empty-folder error as predict."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imgclf.bundle import Bundle, BundleMeta, load_bundle, save_bundle
from imgclf.errors import DataError
from imgclf.explain import explain_files
from imgclf.explain._files import _overlay_stems
from imgclf.models import create_model, model_data_config


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    torch.manual_seed(0)
    model = create_model("test_cnn", 3).eval()
    directory = tmp_path_factory.mktemp("b") / "bundle"
    save_bundle(directory, model, BundleMeta("test_cnn", ("cat", "dog", "ship"), model_data_config(model)))
    return load_bundle(directory)


def test_inputs_sharing_a_file_name_get_one_overlay_each(bundle: Bundle, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    files = [tmp_path / "test" / "cat" / "0000.jpg", tmp_path / "test" / "dog" / "0000.jpg",
             tmp_path / "test" / "cat" / "tabby.jpg"]  # fmt: skip
    for f in files:
        f.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(f)
    report = explain_files(bundle, [str(f) for f in files[:2]], tmp_path / "o1")
    overlays = [Path(r.overlay).name for r in report.images]
    assert overlays == ["cat_0000_gradcam.png", "dog_0000_gradcam.png"]
    assert all(Path(r.overlay).is_file() for r in report.images)
    folder = explain_files(bundle, [str(tmp_path / "test")], tmp_path / "o2")  # folder (gallery) mode
    names = sorted(p.name for p in (tmp_path / "o2").iterdir())
    assert len(folder.images) == 3  # three overlays and the gallery; no clash for tabby: the short name stays
    assert names == ["cat_0000_gradcam.png", "dog_0000_gradcam.png", "gallery_gradcam.png", "tabby_gradcam.png"]


def test_overlay_stems_are_distinct() -> None:
    assert _overlay_stems(["d/a/x.png", "d/b/x.png", "d/a/y.png", "input[0]", "input[1]"]) == [
        "a_x", "b_x", "y", "input_0", "input_1"]  # fmt: skip
    stems = _overlay_stems(["p/a.jpg", "p/a.png", "p/A.bmp", "p/gallery.png"])
    assert len({s.lower() for s in stems}) == 4 and "gallery" not in stems  # the gallery keeps its own name


def test_a_folder_without_images_is_the_same_clear_error_as_predict(bundle: Bundle, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found in .*empty"):
        explain_files(bundle, [str(tmp_path / "empty")], tmp_path / "o")
    assert not (tmp_path / "o").exists()
