"""Federated training on Flower's simulation engine: partitions, a bundle at the end, FedAvg vs central on MNIST."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from imgclf.errors import ConfigError
from imgclf.workflows import partition


def test_iid_partition_is_an_equal_disjoint_cover_and_dirichlet_skews_labels() -> None:
    labels = np.repeat(np.arange(10), 100)
    iid = partition(labels, 10, "iid", seed=0)
    assert sorted(np.concatenate(iid).tolist()) == list(range(1000))
    assert {len(p) for p in iid} == {100}
    skew = partition(labels, 10, "dirichlet:0.1", seed=0)
    assert sorted(np.concatenate(skew).tolist()) == list(range(1000))
    def classes_seen(parts):  # noqa: E306
        return np.mean([len(np.unique(labels[p])) for p in parts])
    assert classes_seen(iid) == 10 and classes_seen(skew) < 5
    with pytest.raises(ConfigError, match="dirichlet:ALPHA"):
        partition(labels, 3, "zipf")


@pytest.mark.federated
@pytest.mark.real
@pytest.mark.slow
def test_fedavg_on_10_iid_mnist_clients_matches_central_and_dirichlet_is_worse(mnist_dir: Path,
                                                                                tmp_path: Path) -> None:  # fmt: skip
    from imgclf.api import train_run
    from imgclf.bundle import load_bundle
    from imgclf.config import load_config
    from imgclf.workflows import federate

    # Same epochs and the same global batch: each round the 10 clients take steps of 8 images each (80 per
    # averaged step), central training takes steps of 80; one local epoch per round, 5 rounds = 5 epochs.
    common = {"data": {"source": str(mnist_dir), "max_per_class": 1000, "augment": "none"},
              "model": {"name": "lenet5"}, "optim": {"lr": 0.002, "schedule": "constant", "warmup_epochs": 0},
              "train": {"epochs": 5, "ema": False, "out": str(tmp_path), "report": False, "calibrate": False}}
    central_run = train_run(load_config(None, {**common, "data": {**common["data"], "batch_size": 80},
                                               "train": {**common["train"], "name": "central"}}))
    central = central_run.metrics["test"]["acc"]
    fed_cfg = {**common, "data": {**common["data"], "batch_size": 8}}
    iid = federate(load_config(None, {**fed_cfg, "train": {**common["train"], "name": "iid"}}), clients=10, rounds=5)
    skew = federate(load_config(None, {**fed_cfg, "train": {**common["train"], "name": "skew"}}), clients=10,
                    rounds=5, partition_scheme="dirichlet:0.1")  # fmt: skip
    fed, fed_skew = iid.metrics["test"]["acc"], skew.metrics["test"]["acc"]
    print(f"central {central:.4f}  FedAvg IID {fed:.4f}  FedAvg Dirichlet(0.1) {fed_skew:.4f}")
    assert abs(fed - central) <= 0.015
    assert fed_skew < fed - 0.01
    bundle = load_bundle(iid.bundle_dir)  # the global model is an ordinary bundle
    assert bundle.meta.extra["federated"]["clients"] == 10 and len(bundle.meta.extra["federated"]["history"]) == 6
    saved = json.loads((iid.run_dir / "federated.json").read_text())
    assert saved["client_sizes"] == iid.client_sizes and sum(iid.client_sizes) > 7000


@pytest.mark.federated
@pytest.mark.slow
def test_federate_cli_writes_a_bundle_that_predicts(tmp_path: Path) -> None:
    import subprocess
    import sys

    from imgclf import data as D
    from imgclf.bundle import load_bundle

    imgs = D.make_synthetic_dataset(tmp_path / "imgs", per_class=60, size=32)
    cmd = [sys.executable, "-m", "imgclf", "federate", str(imgs), "--model", "test_cnn", "--img-size", "32",
           "--clients", "3", "--rounds", "3", "-b", "8", "--strategy", "fedprox", "--out", str(tmp_path), "--name", "f"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    bundle = load_bundle(tmp_path / "f" / "bundle")
    fed = bundle.meta.extra["federated"]
    assert fed["strategy"] == "fedprox" and fed["proximal_mu"] > 0 and sum(fed["client_sizes"]) == 144
    assert bundle.meta.metrics["test"]["acc"] > 1 / 3  # the global model learned the easy synthetic classes


def test_dp_federate_refuses_fedprox_in_one_line_before_any_work() -> None:
    from imgclf.config import load_config
    from imgclf.workflows import federate

    cfg = load_config(None, {"data": {"source": "does-not-exist"}, "train": {"dp_epsilon": 8.0}})
    with pytest.raises(ConfigError, match="--dp-epsilon does not combine with --strategy fedprox"):
        federate(cfg, clients=2, rounds=1, strategy="fedprox")


@pytest.mark.federated
@pytest.mark.slow
def test_federate_with_local_dp_reports_epsilon_within_target_and_learns(tmp_path: Path) -> None:
    import subprocess
    import sys

    from opacus.accountants import RDPAccountant

    from imgclf import data as D
    from imgclf.bundle import load_bundle

    # DP-SGD needs images: with 48 per client the noise swamps the signal (chance); 360 per client learn
    imgs = D.make_synthetic_dataset(tmp_path / "imgs", per_class=300, size=32)
    cmd = [sys.executable, "-m", "imgclf", "federate", str(imgs), "--model", "test_cnn", "--img-size", "32",
           "--clients", "2", "--rounds", "3", "-b", "32", "--dp-epsilon", "8", "--dp-delta", "1e-3", "--set",
           "optim.lr=0.01", "--out", str(tmp_path), "--name", "dp"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "per client" in out.stdout and "epsilon" in out.stdout
    bundle = load_bundle(tmp_path / "dp" / "bundle")  # reloads: GroupNorm rebuilt from the recorded norm
    dp = bundle.meta.extra["privacy"]
    print(dp["epsilon_per_round"], bundle.meta.metrics["test"]["acc"])
    assert 0 < dp["epsilon"] <= 8.0 and dp["delta"] == 1e-3 and "per client" in dp["scope"]
    assert len(dp["clients"]) == 2 and dp["epsilon"] == round(max(c["epsilon"] for c in dp["clients"]), 4)
    # each client's accountant lives across rounds (its Flower node state): epsilon grows round by round and the
    # total equals the accountant recomputed from the client's noise, sampling rate and steps of all rounds
    rounds = dp["epsilon_per_round"]
    assert len(rounds) == 3 and rounds[0] < rounds[1] < rounds[2] == dp["epsilon"]
    for c in dp["clients"]:
        acc = RDPAccountant()
        acc.history = [(c["noise_multiplier"], c["sample_rate"], c["steps"])]
        assert acc.get_epsilon(1e-3) == pytest.approx(c["epsilon"], rel=0.01)
        assert c["steps"] >= 2.5 / c["sample_rate"]  # about 3 rounds of one epoch (1 / rate steps) each
    assert bundle.meta.metrics["test"]["acc"] > 0.5  # well above chance (1/3) on the 3 synthetic classes


def test_the_model_card_fact_of_a_federated_dp_bundle_names_its_scope() -> None:
    from imgclf.evaluation._run_report import _privacy_fact

    dp = {"epsilon": 7.93, "delta": 1e-5, "steps": 18, "noise_multiplier": 0.9, "sample_rate": 0.17,
          "max_grad_norm": 1.0, "accountant": "rdp", "library": "opacus 1.6.0",
          "scope": "sample-level, per client (local DP-SGD on each client)", "clients": [{}, {}, {}]}  # fmt: skip
    fact = _privacy_fact(dp)["differential privacy"]
    assert fact.startswith("(epsilon 7.93, delta 1e-05)") and "per client" in fact and "of 3 clients" in fact
    central = _privacy_fact({k: v for k, v in dp.items() if k not in ("scope", "clients")})["differential privacy"]
    assert "client" not in central
