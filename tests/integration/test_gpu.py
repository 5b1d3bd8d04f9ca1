"""The CUDA path: AMP (fp16 with a grad scaler, bf16), channels-last, torch.compile, DDP over NCCL.

Marked ``gpu`` and skipped without CUDA; ``benchmarks/gpu_check.sh`` runs them (plus a speed run) on a GPU machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from imgclf import data as D
from imgclf.api import train_run
from imgclf.bundle import load_bundle
from imgclf.config import load_config, parse_set
from imgclf.export import load_engine

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run benchmarks/gpu_check.sh)"),
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return D.make_synthetic_dataset(tmp_path_factory.mktemp("gpu") / "imgs", per_class=40, size=32, layout="split")


def _train(dataset: Path, out: Path, name: str, *sets: str) -> Path:
    cfg = load_config(None, parse_set([f"data.source={dataset}", "model.name=test_cnn", "train.epochs=3",
                                       "data.img_size=32", "data.batch_size=16", "data.workers=0",
                                       "train.device=cuda", "train.report=false", "optim.lr=3e-3",
                                       f"train.out={out}", f"train.name={name}", *sets]))  # fmt: skip
    return train_run(cfg).run_dir


def _val_images(dataset: Path, bundle_dir: Path) -> tuple[torch.Tensor, np.ndarray]:
    bundle = load_bundle(bundle_dir)
    splits = D.load_source(str(dataset), seed=0)
    tf = D.build_eval_transform(bundle.meta.preprocessing)
    items = [splits.test[i] for i in range(len(splits.test))]
    return torch.stack([tf(img) for img, _ in items]), np.asarray([y for _, y in items])  # (N, 3, S, S), (N,)


@pytest.mark.parametrize(("amp", "channels_last"), [("fp16", False), ("bf16", False), ("fp16", True)])
def test_amp_and_channels_last_train_a_model_that_works_on_cpu(dataset: Path, tmp_path: Path, amp: str,
                                                               channels_last: bool) -> None:  # fmt: skip
    if amp == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    run = _train(dataset, tmp_path, f"{amp}-{channels_last}", f"train.amp={amp}",
                 f"train.channels_last={str(channels_last).lower()}")  # fmt: skip
    recorded = yaml.safe_load((run / "config.yaml").read_text())["train"]
    assert recorded["amp"] == amp and recorded["device"] == "cuda"
    images, labels = _val_images(dataset, run / "bundle")
    model = load_bundle(run / "bundle").model.eval()  # on CPU, fp32: the bundle does not depend on the GPU
    with torch.no_grad():
        accuracy = float((model(images).argmax(1).numpy() == labels).mean())
    assert accuracy >= 0.8  # three easy synthetic classes: a working mixed-precision step learns them


def test_compiled_fast_engine_agrees_with_eager_on_cuda(dataset: Path, tmp_path: Path) -> None:
    run = _train(dataset, tmp_path, "compile")
    images, _ = _val_images(dataset, run / "bundle")
    model = load_bundle(run / "bundle").model
    eager = load_engine("torch", model=model, device="cuda").predict_logits(images)
    fast = load_engine("torch-fast", model=model, device="cuda", compile=True).predict_logits(images)
    assert float((eager.argmax(1) == fast.argmax(1)).mean()) >= 0.99
    assert np.abs(eager - fast).max() < 0.1  # fp16 autocast + fused kernels: close, not bit-equal


def test_ddp_over_nccl_ranks_hold_identical_weights(dataset: Path, tmp_path: Path) -> None:
    devices = torch.cuda.device_count()
    if devices < 2:
        pytest.skip(f"DDP over NCCL needs 2 CUDA devices, this machine has {devices}")
    worker = Path(__file__).with_name("ddp_worker.py")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(min(devices, 4)),
           "--master-port", "29531", str(worker), str(tmp_path), f"data.source={dataset}", "model.name=test_cnn",
           "train.epochs=2", "data.img_size=32", "data.batch_size=8", "data.workers=0", "train.device=cuda",
           f"train.out={tmp_path}", "train.name=nccl"]  # fmt: skip
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    weights = [load_file(tmp_path / f"rank{r}.safetensors") for r in range(min(devices, 4))]
    for other in weights[1:]:
        for k in weights[0]:
            assert torch.equal(weights[0][k], other[k]), k
    assert (tmp_path / "nccl" / "bundle" / "imgclf.json").is_file()
