"""`imgclf demo` as a new user runs it: offline, prints a test accuracy of at least 97%, writes a bundle."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_reaches_97_percent_and_predicts(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "120"}
    res = subprocess.run([sys.executable, "-m", "imgclf", "demo", "--out", str(tmp_path)], capture_output=True,
                         text=True, env=env, timeout=900)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    acc = float(re.search(r"test accuracy: ([\d.]+)%", res.stdout).group(1))
    assert acc >= 97.0, res.stdout
    assert (tmp_path / "demo" / "bundle" / "imgclf.json").is_file()
    assert res.stdout.count("digit_") >= 8 and "✓" in res.stdout
