"""privacy-audit end to end on a small synthetic run: members from the bundle's own split, files, report facts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from imgclf import data as D
from imgclf.api import fit
from imgclf.bundle import load_bundle, split_samples
from imgclf.evaluation import build_report
from imgclf.workflows import audit_bundle


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("audit")
    imgs = D.make_synthetic_dataset(root / "imgs", per_class=30, size=32)
    return fit(str(imgs), model="test_cnn", epochs=2, batch_size=16, img_size=32, out=str(root), name="r",
               sets=["data.workers=0", "data.val_fraction=0.2", "data.test_fraction=0.2"]).result_  # fmt: skip


@pytest.mark.slow
def test_audit_with_shadows_writes_results_and_the_report_shows_them(run, tmp_path: Path) -> None:
    audit = audit_bundle(run.bundle_dir, shadows=2, out=tmp_path / "audit")
    meta = load_bundle(run.bundle_dir).meta
    members, _, _ = split_samples(meta, meta.training["data"]["source"], "train")
    assert audit.loss.n_members == audit.loss.n_non_members  # balanced: as many members as non-members
    assert audit.loss.n_members <= len(members)
    for r in (audit.loss, audit.lira, audit.control):
        assert 0 <= r.auc.low <= r.auc.value <= r.auc.high <= 1
    assert audit.control.name.startswith("control (val vs test")
    saved = json.loads((tmp_path / "audit" / "privacy_audit.json").read_text())
    assert saved["lira"]["name"] == "LiRA (2 shadows)" and saved["shadows"] == 2
    assert (tmp_path / "audit" / "roc.png").stat().st_size > 1000
    assert meta.extra["privacy_audit"]["loss"]["auc"]["value"] == pytest.approx(audit.loss.auc.value)
    card = build_report(run.run_dir).model_card.read_text()
    assert "membership inference: loss attack" in card and "LiRA (2 shadows)" in card


def test_cli_privacy_audit_prints_json_without_shadows(run, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "imgclf", "privacy-audit", str(run.bundle_dir), "--out", str(tmp_path), "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["lira"] is None and 0 <= result["loss"]["auc"]["value"] <= 1
    assert set(result["loss"]["tpr_at_fpr"]) == {"0.1%", "1%"}
