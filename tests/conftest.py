"""Shared fixtures: offline hub, small threads, and the real datasets extracted once into a cache."""

from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `import imgclf` does; torch may be imported first here
os.environ.setdefault("MPLBACKEND", "Agg")

#: Debian's Chromium, driven by the browser tests through Playwright (`make test` installs it or says how).
CHROMIUM = os.environ.get("IMGCLF_CHROMIUM") or "/usr/bin/chromium"
CHROMIUM_INSTALL = "sudo apt-get install -y chromium"

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
CACHE = Path(os.environ.get("IMGCLF_TEST_CACHE", Path.home() / ".cache" / "imgclf" / "datasets"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def shared_dataset(name: str) -> Path:
    """Extract ``../shared/datasets/<name>.tar.gz`` once into the cache (keyed by its sha256); return the folder."""
    archive = SHARED / f"{name}.tar.gz"
    if not archive.is_file():
        pytest.fail(f"{archive} is missing: the real-data tests need the shared datasets beside the repository")
    target = CACHE / f"{name}-{_sha256(archive)[:16]}"
    done = target / ".complete"
    if not done.exists():
        tmp = target.with_suffix(".partial")
        if tmp.exists():
            import shutil

            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        tmp.rename(target)
        done.touch()
    return target / name


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    return shared_dataset("mnist")


@pytest.fixture(scope="session")
def cifar10_dir() -> Path:
    return shared_dataset("cifar10")


@pytest.fixture(scope="session")
def hymenoptera_dir() -> Path:
    return shared_dataset("hymenoptera")


def browser_problem(chromium: str = CHROMIUM) -> str | None:
    """Why the browser tests cannot run here (with the one command that fixes it), or None."""
    if not os.access(chromium, os.X_OK):
        return f"the browser tests need Debian's chromium at {chromium}; run: {CHROMIUM_INSTALL}"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the browser tests need Playwright (the dev extra); run: .venv/bin/pip install -e '.[dev]'"
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A browser test fails, never skips, where Chromium or Playwright is missing (deselect with -m 'not browser')."""
    if item.get_closest_marker("browser") is not None:
        problem = browser_problem()
        if problem:
            pytest.fail(problem, pytrace=False)
