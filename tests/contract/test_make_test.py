"""`make test` installs Chromium (as root) or stops at once with the one command to run; browser tests never skip."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def _fake_bin(tmp: Path, uid: int) -> Path:
    """A PATH entry whose `id -u` says ``uid`` and whose `apt-get` only records its arguments (and, for
    `install`, puts an executable where chromium should be)."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    (bin_dir / "apt-get").write_text(
        '#!/bin/sh\necho "$@" >> "$APT_LOG"\ncase "$1" in install) printf "#!/bin/sh\\n" > "$CHROMIUM_AT"; '
        'chmod +x "$CHROMIUM_AT";; esac\n')  # fmt: skip
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return bin_dir


def _make(tmp: Path, uid: int, target: str = "test") -> tuple[subprocess.CompletedProcess, Path, Path]:
    chromium, apt_log = tmp / "chromium", tmp / "apt.log"
    env = {**os.environ, "PATH": f"{_fake_bin(tmp, uid)}:{os.environ['PATH']}", "APT_LOG": str(apt_log),
           "CHROMIUM_AT": str(chromium)}  # fmt: skip
    # PY=false and a venv in tmp: should the check not run first, the install fails at once, here, not in the repo.
    res = subprocess.run(["make", "-s", "-C", str(ROOT), target, f"CHROMIUM={chromium}", "PY=false",
                          f"VENV={tmp / 'venv'}"], capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    return res, chromium, apt_log


def test_without_chromium_and_not_root_make_test_stops_at_once_with_the_command(tmp_path: Path) -> None:
    res, chromium, apt_log = _make(tmp_path, uid=1000)
    assert res.returncode != 0
    assert f"need Debian's chromium at {chromium}. Run: sudo apt-get install -y chromium" in res.stderr
    assert not (tmp_path / "venv").exists() and not apt_log.exists()  # stopped before installing anything


def test_as_root_make_test_installs_chromium_with_apt_and_only_when_missing(tmp_path: Path) -> None:
    res, chromium, apt_log = _make(tmp_path, uid=0, target="chromium")
    assert res.returncode == 0, res.stderr
    assert apt_log.read_text().splitlines() == ["update -qq", "install -y -qq chromium"]
    assert os.access(chromium, os.X_OK)
    apt_log.unlink()
    res, _, _ = _make(tmp_path, uid=0, target="chromium")  # now present: nothing to install
    assert res.returncode == 0 and not apt_log.exists()


def test_a_browser_test_fails_rather_than_skips_without_chromium(tmp_path: Path) -> None:
    env = {**os.environ, "IMGCLF_CHROMIUM": str(tmp_path / "no-chromium")}
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfs",
                          "tests/integration/test_evaluation_flow.py::test_report_renders_in_chromium"],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)  # fmt: skip
    assert res.returncode == 1, res.stdout
    assert ("1 error" in res.stdout or "1 failed" in res.stdout) and "skipped" not in res.stdout  # setup fails
    assert "sudo apt-get install -y chromium" in res.stdout
