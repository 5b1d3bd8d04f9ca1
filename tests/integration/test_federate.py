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


@pytest.mark.real
@pytest.mark.slow
def test_fedavg_on_10_iid_mnist_clients_matches_central_and_dirichlet_is_worse(mnist_dir: Path,
                                                                                tmp_path: Path) -> None:  # fmt: skip
    pytest.importorskip("flwr")
    from imgclf.api import fit
    from imgclf.bundle import load_bundle
    from imgclf.config import load_config
    from imgclf.workflows import federate

    base = {"data": {"source": str(mnist_dir), "max_per_class": 1000, "batch_size": 64, "augment": "none"},
            "model": {"name": "lenet5"},
            "optim": {"schedule": "constant", "warmup_epochs": 0},
            "train": {"epochs": 5, "ema": False, "out": str(tmp_path), "report": False}}  # fmt: skip
    central = fit(str(mnist_dir), model="lenet5", epochs=5, out=str(tmp_path), name="central",
                  sets=["data.max_per_class=1000", "data.batch_size=64", "data.augment=none", "optim.schedule=constant",
                        "optim.warmup_epochs=0", "train.ema=false", "train.report=false",
                        "train.calibrate=false"]).result_.metrics["test"]["acc"]  # fmt: skip
    iid = federate(load_config(None, {**base, "train": {**base["train"], "name": "iid"}}), clients=10, rounds=5)
    skew = federate(load_config(None, {**base, "train": {**base["train"], "name": "skew"}}), clients=10, rounds=5,
                    partition_scheme="dirichlet:0.1")  # fmt: skip
    fed, fed_skew = iid.metrics["test"]["acc"], skew.metrics["test"]["acc"]
    print(f"central {central:.4f}  FedAvg IID {fed:.4f}  FedAvg Dirichlet(0.1) {fed_skew:.4f}")
    assert abs(fed - central) <= 0.015
    assert fed_skew < fed - 0.01
    bundle = load_bundle(iid.bundle_dir)  # the global model is an ordinary bundle
    assert bundle.meta.extra["federated"]["clients"] == 10 and len(bundle.meta.extra["federated"]["history"]) == 6
    saved = json.loads((iid.run_dir / "federated.json").read_text())
    assert saved["client_sizes"] == iid.client_sizes and sum(iid.client_sizes) > 7000
