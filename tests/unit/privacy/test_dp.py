"""DP-SGD: refusals, the BatchNorm swap a bundle can rebuild, the accountant's epsilon, and exact resume state."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("opacus")

from opacus.accountants import RDPAccountant  # noqa: E402
from opacus.accountants.analysis import rdp as rdp_analysis  # noqa: E402
from tests.integration._helpers import StopAt  # noqa: E402

from imgclf import data as D  # noqa: E402
from imgclf import privacy as P  # noqa: E402
from imgclf.api import fit  # noqa: E402
from imgclf.bundle import load_bundle  # noqa: E402
from imgclf.config import load_config  # noqa: E402
from imgclf.errors import ConfigError  # noqa: E402
from imgclf.models import batchnorm_to_groupnorm, create_model  # noqa: E402


@pytest.mark.parametrize("override, flag", [
    ({"data": {"mixup": 0.2}}, "mixup"),
    ({"data": {"sampler": "balanced"}}, "sampler=balanced"),
    ({"train": {"grad_clip": 1.0}}, "grad_clip"),
    ({"train": {"accumulate": 2}}, "accumulate"),
    ({"data": {"cache": "memory"}}, "cache=memory"),
])  # fmt: skip
def test_what_does_not_combine_with_dp_is_refused_in_one_line(override: dict, flag: str) -> None:
    cfg = load_config(None, {**override, "train": {**override.get("train", {}), "dp_epsilon": 8.0}})
    with pytest.raises(ConfigError, match=flag) as err:
        P.check_dp_config(cfg)
    assert "\n" not in str(err.value)


def test_ema_is_allowed_with_dp_it_is_post_processing() -> None:
    P.check_dp_config(load_config(None, {"train": {"dp_epsilon": 8.0, "ema": True}}))


def test_batchnorm_is_replaced_and_named_and_the_bundle_rule_rebuilds_the_same_layers(capsys) -> None:
    from rich.console import Console

    model = create_model("test_cnn", 3)
    fixed, replaced = P.dp_compatible_model(model, Console())
    assert replaced == ["features.1", "features.4"]
    out = capsys.readouterr().out
    assert "BatchNorm2d" in out and "GroupNorm" in out and "features.1" in out
    rebuilt = create_model("test_cnn", 3)
    assert batchnorm_to_groupnorm(rebuilt) == replaced
    rebuilt.load_state_dict(fixed.state_dict())  # strict: same names and shapes
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(rebuilt.eval()(x), fixed.eval()(x))


@pytest.fixture(scope="module")
def dp_run(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("dp")
    imgs = D.make_synthetic_dataset(root / "imgs", per_class=40, size=32)
    return fit(str(imgs), model="test_cnn", epochs=2, batch_size=16, img_size=32, out=str(root), name="r",
               sets=["train.dp_epsilon=4", "data.workers=0", "train.report=false"]).result_  # fmt: skip


def test_reported_epsilon_is_the_accountant_recomputed_from_sigma_rate_and_steps(dp_run) -> None:
    dp = dp_run.bundle.meta.extra["privacy"]
    assert dp["epsilon"] <= 4.0
    train_size = len(D.load_source(dp_run.config.data.source, seed=0).train)
    batches = -(-train_size // 16)
    assert dp["sample_rate"] == pytest.approx(1 / batches)
    assert dp["steps"] == 2 * batches  # one noisy step per Poisson batch (an empty draw is ~impossible here)
    acc = RDPAccountant()
    acc.history = [(dp["noise_multiplier"], dp["sample_rate"], dp["steps"])]
    assert dp["epsilon"] == pytest.approx(acc.get_epsilon(1e-5), rel=0.01)
    orders = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))  # Opacus' default orders
    rdp = rdp_analysis.compute_rdp(q=dp["sample_rate"], noise_multiplier=dp["noise_multiplier"],
                                   steps=dp["steps"], orders=orders)  # fmt: skip
    eps, _ = rdp_analysis.get_privacy_spent(orders=orders, rdp=rdp, delta=1e-5)
    assert dp["epsilon"] == pytest.approx(eps, rel=0.01)
    assert len(dp["epsilon_per_epoch"]) == 2 and dp["epsilon_per_epoch"][0] < dp["epsilon_per_epoch"][1]


def test_dp_bundle_reloads_with_groupnorm_and_logs_epsilon(dp_run) -> None:
    bundle = load_bundle(dp_run.bundle_dir)
    assert bundle.meta.extra["norm"] == "groupnorm"
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in bundle.model.modules())
    lines = (Path(dp_run.run_dir) / "metrics.jsonl").read_text().splitlines()
    assert '"epsilon"' in lines[-1]


def test_accounting_state_round_trips_through_a_checkpoint(dp_run) -> None:
    from imgclf import engine as E

    _, meta = E.load_checkpoint(Path(dp_run.run_dir) / "checkpoints" / "last.safetensors")
    saved = meta["callbacks"]["privacy"]
    dp = dp_run.bundle.meta.extra["privacy"]
    assert sum(h[2] for h in saved["history"]) == dp["steps"]
    acc = RDPAccountant()
    acc.history = [tuple(h) for h in saved["history"]]
    assert acc.get_epsilon(1e-5) == pytest.approx(dp["epsilon"], abs=1e-3)


@pytest.mark.slow
def test_sigkill_after_an_epoch_then_resume_gives_the_uninterrupted_weights_and_epsilon(tmp_path: Path) -> None:
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from imgclf import engine as E

    imgs = D.make_synthetic_dataset(tmp_path / "imgs", per_class=40, size=32)
    args = ["train", str(imgs), "--model", "test_cnn", "--epochs", "3", "--img-size", "32", "-b", "16",
            "--dp-epsilon", "4", "--set", "data.workers=0", "--set", "train.report=false", "--out", str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def start(*extra: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "imgclf", *args, *extra], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip

    ref = start("--name", "ref")
    assert ref.wait(timeout=600) == 0, ref.stdout.read()
    proc = start("--name", "killed")
    last = tmp_path / "killed" / "checkpoints" / "last.safetensors"
    deadline, killed = time.time() + 300, False
    while time.time() < deadline and proc.poll() is None:
        if last.exists() and E.load_checkpoint(last)[1]["epoch"] >= 1:
            proc.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.01)
    proc.wait(timeout=60)
    assert killed, "the run finished before it could be killed"
    resumed = subprocess.run([sys.executable, "-m", "imgclf", "train", "--resume", str(tmp_path / "killed")],
                             env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    a = json.loads((tmp_path / "ref" / "bundle" / "imgclf.json").read_text())["extra"]["privacy"]
    b = json.loads((tmp_path / "killed" / "bundle" / "imgclf.json").read_text())["extra"]["privacy"]
    assert a == b  # same steps, same epsilon per epoch: the accountant continued exactly
    wa = load_bundle(tmp_path / "ref" / "bundle").model.state_dict()
    wb = load_bundle(tmp_path / "killed" / "bundle").model.state_dict()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_a_mid_epoch_resume_takes_the_same_poisson_batches_and_ends_with_the_same_weights(tmp_path: Path) -> None:
    from imgclf import engine as E
    from imgclf.api import train_run
    from imgclf.errors import TrainingInterrupted

    imgs = D.make_synthetic_dataset(tmp_path / "imgs", per_class=40, size=32)

    def cfg(name: str):
        train = {"epochs": 2, "dp_epsilon": 4.0, "report": False, "calibrate": False, "out": str(tmp_path),
                 "name": name}
        return load_config(None, {"data": {"source": str(imgs), "workers": 0, "batch_size": 16, "img_size": 32},
                                  "model": {"name": "test_cnn"}, "train": train})

    ref = train_run(cfg("ref"))
    with pytest.raises(TrainingInterrupted):
        train_run(cfg("cut"), callbacks=[StopAt(3)])  # as Ctrl-C / SIGTERM do: stop after step 3, save, exit
    _, meta = E.load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.safetensors")
    assert meta["epoch"] == 0 and meta["batch_in_epoch"] >= 3  # cut in the middle of the first epoch
    resumed = train_run(cfg("cut"), resume=tmp_path / "cut")
    a, b = ref.bundle.meta.extra["privacy"], resumed.bundle.meta.extra["privacy"]
    assert a == b  # the same noisy steps, the same epsilon per epoch
    wa, wb = ref.bundle.model.state_dict(), resumed.bundle.model.state_dict()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_the_run_stops_before_an_epoch_that_would_pass_the_target_epsilon() -> None:
    from types import SimpleNamespace

    engine = SimpleNamespace(accountant=RDPAccountant())
    sampler = SimpleNamespace(sample_rate=0.01, steps=100, epoch_start=0)
    cb = P.PrivacyAccounting(privacy_engine=engine, sampler=sampler, noise=torch.Generator(), target_epsilon=2.0,
                             delta=1e-5, noise_multiplier=1.0, max_grad_norm=1.0, replaced=[])  # fmt: skip
    state = SimpleNamespace(epoch=0, epochs=100, stop=False, stop_reason="", batch_in_epoch=0)
    epochs = []
    while not state.stop and state.epoch < state.epochs:
        cb.on_epoch_start(state)
        engine.accountant.history.append((1.0, 0.01, 100))  # one epoch of noisy steps
        metrics: dict = {}
        state.epoch += 1
        cb.on_epoch_end(state, metrics)
        epochs.append(metrics["epsilon"])
    assert state.stop and "another epoch would pass the target" in state.stop_reason
    assert epochs[-1] <= 2.0 < cb.epsilon(100)  # stopped at the last epoch that fits
    assert epochs == sorted(epochs) and cb.summary()["epsilon_per_epoch"] == [round(e, 4) for e in epochs]


def test_dp_resolves_amp_auto_to_off_and_keeps_explicit_choices() -> None:
    assert P.resolve_dp_auto(load_config(None, {"train": {"dp_epsilon": 8.0}})).train.amp == "off"
    assert P.resolve_dp_auto(load_config(None, {})).train.amp == "auto"  # no DP: untouched
