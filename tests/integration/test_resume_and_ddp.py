"""Nothing lost: SIGKILL mid-epoch + --resume gives the uninterrupted weights; DDP ranks agree."""

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

from imgclf import data as D
from imgclf import engine as E

ARGS = ["--model", "test_cnn", "--epochs", "3", "--img-size", "32", "--batch-size", "8", "--seed", "5",
        "--set", "data.workers=0", "--set", "train.save_every_steps=4", "--set", "data.mixup=0.2",
        "--set", "data.augment=strong", "--set", "train.ema=true"]  # fmt: skip  (auto: EMA off this short)


def _imgclf(*args: str, env: dict | None = None) -> subprocess.Popen:
    e = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "imgclf", *args], env=e, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return D.make_synthetic_dataset(tmp_path_factory.mktemp("d") / "imgs", per_class=40, size=32, layout="flat")


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(dataset: Path, tmp_path: Path) -> None:
    ref = _imgclf("train", str(dataset), *ARGS, "--out", str(tmp_path), "--name", "ref")
    assert ref.wait(timeout=600) == 0, ref.stdout.read()

    run = tmp_path / "killed"
    proc = _imgclf("train", str(dataset), *ARGS, "--out", str(tmp_path), "--name", "killed")
    last = run / "checkpoints" / "last.safetensors"
    deadline = time.time() + 300
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        if last.exists():
            _, meta = E.load_checkpoint(last)
            if meta["epoch"] >= 1 and meta["batch_in_epoch"] > 0:  # a mid-epoch checkpoint of epoch 2
                proc.send_signal(signal.SIGKILL)
                killed_at = meta
                break
        time.sleep(0.01)
    proc.wait(timeout=60)
    assert killed_at is not None, "the run finished before it could be killed mid-epoch"
    assert proc.returncode == -signal.SIGKILL
    assert not (run / "bundle").exists()

    resumed = _imgclf("train", "--resume", str(run))
    out = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, out
    assert "resuming" in out
    a = load_file(tmp_path / "ref" / "bundle" / "model.safetensors")
    b = load_file(run / "bundle" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.slow
def test_sigterm_saves_a_resumable_checkpoint(dataset: Path, tmp_path: Path) -> None:
    proc = _imgclf("train", str(dataset), *ARGS, "--epochs", "50", "--out", str(tmp_path), "--name", "t")
    last = tmp_path / "t" / "checkpoints" / "last.safetensors"
    deadline = time.time() + 300
    while time.time() < deadline and not last.exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, out
    assert "imgclf train --resume" in out
    _, meta = E.load_checkpoint(last)
    assert meta["step"] > 0


def _torchrun(nproc: int, out: Path, dataset: Path, batch_size: int, port: int) -> dict[str, torch.Tensor]:
    """Train lenet5 (no BatchNorm: its per-rank statistics would differ from one big batch's) under torchrun;
    returns each rank's weights right after training."""
    worker = Path(__file__).with_name("ddp_worker.py")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--master-port", str(port),
           str(worker), str(out), f"data.source={dataset}", "model.name=lenet5", "train.epochs=2",
           "data.img_size=32", f"data.batch_size={batch_size}", "data.workers=0", f"train.out={out}",
           "train.name=run", "train.report=false"]  # fmt: skip
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    return {r: load_file(out / f"rank{r}.safetensors") for r in range(nproc)}


@pytest.mark.slow
def test_ddp_matches_a_single_process_run_of_the_same_global_batch(dataset: Path, tmp_path: Path) -> None:
    """2 ranks x batch 8 = one process x batch 16: the same samples per step (rank r takes positions r::2 of the
    seeded global order), gradients averaged over ranks = the mean over the big batch; so the same weights, up to
    float summation order."""
    ddp = _torchrun(2, tmp_path / "ddp", dataset, batch_size=8, port=29517)
    single = _torchrun(1, tmp_path / "single", dataset, batch_size=16, port=29518)[0]
    r0, r1 = ddp[0], ddp[1]
    assert r0.keys() == r1.keys() == single.keys()
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k  # the ranks agree exactly
    diff = max(float((r0[k] - single[k]).abs().max()) for k in r0)
    other = _torchrun(1, tmp_path / "other", dataset, batch_size=8, port=29519)[0]  # a different global batch
    baseline = max(float((other[k] - single[k]).abs().max()) for k in single)
    print(f"max |DDP 2x8 - single 16| = {diff:.2e}; max |single 8 - single 16| = {baseline:.2e}")
    assert diff < 1e-4 and baseline > 100 * diff, (diff, baseline)
    assert (tmp_path / "ddp" / "run" / "bundle" / "imgclf.json").is_file()
    assert not any(p.name.startswith("run") and p.name != "run" for p in (tmp_path / "ddp").iterdir())
