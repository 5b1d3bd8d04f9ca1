"""`imgclf explain` on CNN and ViT bundles trained by imgclf."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import imgclf
from imgclf import data as D
from imgclf.errors import ConfigError


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return D.make_synthetic_dataset(tmp_path_factory.mktemp("x") / "d", per_class=16, size=32, layout="flat")


@pytest.mark.parametrize("arch", ["test_cnn", "test_vit"])
def test_explain_api_on_trained_bundles(arch: str, images: Path, tmp_path: Path) -> None:
    clf = imgclf.fit(images, model=arch, epochs=1, img_size=32, out=str(tmp_path), name=arch,
                     sets=["data.workers=0"])  # fmt: skip
    report = clf.explain([str(images / "red")], tmp_path / "expl", method="gradcam")
    assert len(report.images) == 16 and report.gallery is not None
    first = report.images[0]
    assert first.label in clf.classes and first.target == first.label
    with Image.open(first.overlay) as im:
        assert im.width > im.height  # input and overlay side by side
    with pytest.raises(ConfigError, match="not a class"):
        clf.explain([str(images / "red")], tmp_path / "e2", target="purple")


def test_explain_cli_with_target_and_faithfulness(images: Path, tmp_path: Path) -> None:
    clf = imgclf.fit(images, model="test_cnn", epochs=1, img_size=32, out=str(tmp_path), name="r",
                     sets=["data.workers=0"])  # fmt: skip
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    one = sorted((images / "blue").iterdir())[0]
    res = subprocess.run([sys.executable, "-m", "imgclf", "explain", str(clf.result_.bundle_dir), str(one), str(bad),
                          "--method", "smoothgrad", "--target", "blue", "--faithfulness", "--json", "--out",
                          str(tmp_path / "o")], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert res.returncode == 1 and "bad.png" in res.stderr  # the bad file is reported, the good one explained
    out = json.loads(res.stdout)
    assert out["images"][0]["target"] == "blue" and 0 <= out["images"][0]["deletion_auc"] <= 1
    assert Path(out["images"][0]["overlay"]).is_file()
