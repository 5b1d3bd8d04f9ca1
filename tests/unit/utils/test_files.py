"""Atomic writes: whole-or-nothing, and files that follow the umask like any other saved file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from imgclf.utils import atomic_write_bytes, atomic_write_text
from imgclf.utils._files import current_umask


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077])
def test_atomic_writes_follow_the_umask(tmp_path: Path, mask: int) -> None:
    old = os.umask(mask)
    try:
        written = atomic_write_text(tmp_path / "a" / "config.yaml", "x: 1\n")
        plain = tmp_path / "plain.txt"
        plain.write_text("x")  # what an ordinary open() gives under the same umask
    finally:
        os.umask(old)
    assert stat.S_IMODE(written.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == 0o666 & ~mask


def test_a_bundle_file_is_readable_by_others_under_the_usual_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = atomic_write_bytes(tmp_path / "model.safetensors", b"abc")
    finally:
        os.umask(old)
    assert path.stat().st_mode & stat.S_IROTH and path.read_bytes() == b"abc"
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]  # no temp file left behind


def test_current_umask_reads_without_changing_it() -> None:
    old = os.umask(0o027)
    try:
        assert current_umask() == 0o027
        assert current_umask() == 0o027
    finally:
        os.umask(old)
