"""elastic_resume: which run a torchrun-restarted worker group continues (one process, no torchrun needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from imgclf import engine as E
from imgclf.config import RunConfig, load_config


def _cfg(out: Path, name: str | None = "r") -> RunConfig:
    return load_config(None, {"data": {"source": "digits"}, "train": {"out": str(out), "name": name,
                                                                      "device": "cpu"}})  # fmt: skip


@pytest.fixture
def restarted(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("TORCHELASTIC_MAX_RESTARTS", "3")
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "False")  # TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1
    return monkeypatch


def test_a_restarted_group_resumes_the_named_run_from_its_last_checkpoint(restarted, tmp_path: Path) -> None:
    E.save_checkpoint(E.last_checkpoint(tmp_path, "r"), {"w": torch.zeros(1)}, {"epoch": 1})
    assert E.elastic_resume(_cfg(tmp_path), None) == tmp_path / "r"


def test_a_restart_before_the_first_checkpoint_starts_over(restarted, tmp_path: Path) -> None:
    assert E.elastic_resume(_cfg(tmp_path), None) is None


def test_the_first_group_starts_fresh_even_over_an_old_checkpoint(restarted, tmp_path: Path) -> None:
    restarted.setenv("TORCHELASTIC_RESTART_COUNT", "0")
    E.save_checkpoint(E.last_checkpoint(tmp_path, "r"), {"w": torch.zeros(1)}, {"epoch": 1})
    assert E.elastic_resume(_cfg(tmp_path), None) is None


def test_outside_torchrun_or_with_an_explicit_resume_nothing_changes(restarted, tmp_path: Path) -> None:
    assert E.elastic_resume(_cfg(tmp_path), tmp_path / "x") == tmp_path / "x"
    restarted.delenv("TORCHELASTIC_RESTART_COUNT")
    E.save_checkpoint(E.last_checkpoint(tmp_path, "r"), {"w": torch.zeros(1)}, {"epoch": 1})
    assert E.elastic_resume(_cfg(tmp_path), None) is None


def test_restarts_need_a_fixed_run_name(restarted, tmp_path: Path) -> None:
    from imgclf.errors import ConfigError

    with pytest.raises(ConfigError, match="--name NAME"):
        E.elastic_resume(_cfg(tmp_path, name=None), None)


def test_restarts_refuse_torchruns_shared_store_with_the_fix(restarted, tmp_path: Path) -> None:
    from imgclf.errors import ConfigError

    restarted.setenv("TORCHELASTIC_USE_AGENT_STORE", "True")
    with pytest.raises(ConfigError, match="TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 torchrun"):
        E.elastic_resume(_cfg(tmp_path), None)
