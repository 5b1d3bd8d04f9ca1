"""Run directories are claimed atomically: a taken name is refused, parallel starts cannot share one."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from rich.console import Console

from imgclf.api._run import claim_run_dir
from imgclf.config import RunConfig, update
from imgclf.errors import ConfigError


def _cfg(out: Path, name: str | None) -> RunConfig:
    return update(RunConfig(), {"data": {"source": "shapes"}, "model": {"name": "test_cnn"},
                                "train": {"out": str(out), "name": name}})  # fmt: skip


def test_a_taken_name_is_refused_with_one_actionable_line(tmp_path: Path) -> None:
    first = claim_run_dir(_cfg(tmp_path, "exp"))
    assert first == tmp_path / "exp" and first.is_dir()
    (first / "config.yaml").write_text("kept")
    with pytest.raises(ConfigError) as err:
        claim_run_dir(_cfg(tmp_path, "exp"))
    msg = str(err.value)
    assert "\n" not in msg and str(first) in msg and "--name" in msg and "--resume" in msg
    assert err.value.exit_code == 2
    assert (first / "config.yaml").read_text() == "kept"


def test_parallel_claims_of_one_name_have_exactly_one_winner(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "race")
    barrier = threading.Barrier(8)
    won, refused = [], []

    def start() -> None:
        barrier.wait()
        try:
            won.append(claim_run_dir(cfg))
        except ConfigError:
            refused.append(1)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(refused) == 7


def test_a_generated_name_that_collides_gets_a_suffix_and_says_so(tmp_path: Path, monkeypatch) -> None:
    import imgclf.api._run as run

    monkeypatch.setattr(run, "run_name", lambda cfg: "shapes-test_cnn-20260101-120000")  # same second
    log = tmp_path / "log.txt"
    with open(log, "w") as f:
        console = Console(file=f, width=200)
        a = claim_run_dir(_cfg(tmp_path, None), console)
        b = claim_run_dir(_cfg(tmp_path, None), console)
    assert a.name == "shapes-test_cnn-20260101-120000" and b.name == "shapes-test_cnn-20260101-120000-2"
    assert f"this run writes to {b}" in log.read_text()


def test_a_run_that_fails_before_its_first_checkpoint_gives_its_directory_back(tmp_path: Path) -> None:
    from imgclf.api._run import released_on_failure

    run = claim_run_dir(_cfg(tmp_path, "exp"))
    with pytest.raises(RuntimeError), released_on_failure(run, claimed=True):
        (run / "config.yaml").write_text("x")
        (run / "tensorboard").mkdir()
        raise RuntimeError("out of memory in the first batch")
    assert not run.exists()
    assert claim_run_dir(_cfg(tmp_path, "exp")) == run  # the same --name works again

    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.safetensors").write_bytes(b"x")
    with pytest.raises(RuntimeError), released_on_failure(run, claimed=True):
        raise RuntimeError("NaN loss")
    assert (run / "checkpoints" / "last.safetensors").is_file()  # a checkpoint keeps it: --resume can continue

    other = claim_run_dir(_cfg(tmp_path, "mine"))
    (other / "notes.txt").write_text("a person's file")
    with pytest.raises(RuntimeError), released_on_failure(other, claimed=True):
        raise RuntimeError("boom")
    assert (other / "notes.txt").read_text() == "a person's file"
    with pytest.raises(RuntimeError), released_on_failure(run.parent / "resumed", claimed=False):
        (run.parent / "resumed").mkdir()
        raise RuntimeError("a resumed run's directory is never removed")
    assert (run.parent / "resumed").is_dir()


def test_resume_refuses_other_data_and_accepts_the_recorded_data(tmp_path: Path, monkeypatch) -> None:
    """`train OTHER --resume RUN` silently continued on the recorded data; the data it trains on, however spelt
    (relative here, absolute in config.yaml), is accepted."""
    import imgclf
    from imgclf.api import _classifier
    from imgclf.config import to_yaml

    data = tmp_path / "data"
    data.mkdir()
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(to_yaml(update(_cfg(tmp_path, "run"), {"data": {"source": str(data)}})))
    with pytest.raises(ConfigError, match=r"cannot apply DATA .*other"):
        imgclf.Classifier().fit(tmp_path / "other", resume=run)
    seen = {}

    class Reached(Exception):
        pass

    def train_run(cfg, **kw):  # noqa: ANN001, ANN003 - stands in for training
        seen.update(kw)
        raise Reached

    monkeypatch.setattr(_classifier, "train_run", train_run)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Reached):
        imgclf.Classifier().fit("data", resume=run)
    assert seen["asked"] == [] and seen["resume"] == run  # nothing to refuse: the run's own data
