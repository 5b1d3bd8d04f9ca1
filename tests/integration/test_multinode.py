"""Multi-node training on one machine: two torchrun agents joined by c10d rendezvous on 127.0.0.1, gloo.

Two agents of one process each must train exactly the weights of one agent with two processes; a worker
SIGKILLed under ``--max-restarts 1`` must be restarted by its agent and end, resumed from ``checkpoints/last``,
with the weights of the uninterrupted run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tests.integration._helpers import free_port

from imgclf import data as D
from imgclf import engine as E

ARGS = ["--model", "test_cnn", "--epochs", "3", "--img-size", "32", "--batch-size", "8", "--seed", "3",
        "--set", "data.workers=0", "--set", "train.save_every_steps=2", "--set", "train.report=false",
        "--set", "train.dist_timeout=120"]  # fmt: skip
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}


def _torchrun(port: int, *, nnodes: int, nproc: int, restarts: int, train_args: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(nnodes), "--nproc-per-node", str(nproc),
           "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", f"job{port}",
           "--rdzv-conf", "join_timeout=300", "--max-restarts", str(restarts), "--monitor-interval", "0.5",
           "-m", "imgclf", "train", *train_args]  # fmt: skip
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # fmt: skip


def _finish(*agents: subprocess.Popen, timeout: float = 900) -> list[str]:
    outs = []
    for agent in agents:
        try:
            outs.append(agent.communicate(timeout=timeout)[0])
        finally:
            if agent.poll() is None:
                os.killpg(agent.pid, signal.SIGKILL)
                agent.wait()
    for agent, out in zip(agents, outs):
        assert agent.returncode == 0, out
    return outs


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "bundle" / "model.safetensors")


def _assert_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _workers(agent_pid: int) -> list[int]:
    """The `imgclf train` processes a torchrun agent started (its direct children)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == agent_pid and b"imgclf" in cmdline and b"train" in cmdline:
            pids.append(int(entry.name))
    return pids


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return D.make_synthetic_dataset(tmp_path_factory.mktemp("d") / "imgs", per_class=24, size=32)


@pytest.fixture(scope="module")
def single_node(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: one agent, two worker processes."""
    out = tmp_path_factory.mktemp("runs")
    agent = _torchrun(free_port(), nnodes=1, nproc=2, restarts=0,
                      train_args=[str(dataset), *ARGS, "--out", str(out), "--name", "single"])  # fmt: skip
    _finish(agent)
    return out / "single"


@pytest.mark.slow
def test_two_agents_train_the_weights_of_one_agent_with_two_processes(
    dataset: Path, single_node: Path, tmp_path: Path
) -> None:
    port = free_port()
    args = [str(dataset), *ARGS, "--out", str(tmp_path), "--name", "multi"]
    agents = [_torchrun(port, nnodes=2, nproc=1, restarts=0, train_args=args) for _ in range(2)]
    _finish(*agents)
    _assert_equal(_weights(tmp_path / "multi"), _weights(single_node))


@pytest.mark.slow
def test_a_killed_worker_restarts_and_ends_with_the_uninterrupted_weights(
    dataset: Path, single_node: Path, tmp_path: Path
) -> None:
    port = free_port()
    args = [str(dataset), *ARGS, "--out", str(tmp_path), "--name", "elastic"]
    host = _torchrun(port, nnodes=2, nproc=1, restarts=1, train_args=args)
    other = _torchrun(port, nnodes=2, nproc=1, restarts=1, train_args=args)
    last = E.last_checkpoint(tmp_path, "elastic")
    killed_at = None
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and killed_at is None and other.poll() is None:
            if last.exists():
                _, meta = E.load_checkpoint(last)
                victims = _workers(other.pid)
                if meta["epoch"] >= 1 and meta["batch_in_epoch"] > 0 and victims:  # mid-epoch 2
                    os.kill(victims[0], signal.SIGKILL)
                    killed_at = meta
            time.sleep(0.02)
    finally:
        outs = _finish(host, other)
    assert killed_at is not None, "the run finished before a worker could be killed mid-epoch:\n" + outs[1]
    assert any("resuming" in out for out in outs), outs
    _, meta = E.load_checkpoint(last)
    assert meta["epoch"] == 3
    _assert_equal(_weights(tmp_path / "elastic"), _weights(single_node))

