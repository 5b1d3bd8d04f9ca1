"""`imgclf batch --ray` on a local Ray cluster of two 1-CPU nodes (127.0.0.1 only, torn down at the end)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration._helpers import cli
from tests.integration.test_batch import _parquet_rows, assert_rows_match_predict, bundle, images  # noqa: F401

from imgclf import workflows as W

# Before Ray is imported: keep every Ray address on 127.0.0.1 (by default Ray rewrites a loopback address to the
# machine's network address, which this test must not use).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
ray_cluster_utils = pytest.importorskip("ray.cluster_utils")


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A head and a worker node of one CPU each; the address to connect a driver to."""
    c = ray_cluster_utils.Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False,
    })  # fmt: skip
    try:
        c.add_node(num_cpus=1, node_ip_address="127.0.0.1")
        c.wait_for_nodes()
        yield c.address
    finally:
        c.shutdown()


@pytest.mark.slow
def test_ray_rows_equal_predict_one_per_image(bundle: Path, images: Path, cluster: str,  # noqa: F811
                                              tmp_path: Path) -> None:  # fmt: skip
    import ray

    out = tmp_path / "preds.parquet"
    result = W.batch_predict(bundle, [images], out, ray_address=cluster, batch_size=4, progress=False)
    assert (result.images, result.errors, result.runner) == (25, 2, "ray")
    assert not ray.is_initialized(), "the driver connection is closed after the run"
    predicted = json.loads(cli("predict", str(bundle), str(images), "--json").stdout)
    assert_rows_match_predict(_parquet_rows(out), predicted)
    manifest = json.loads((out / W.MANIFEST).read_text())
    assert manifest["complete"] and manifest["job"]["runner"] == "ray"
    again = W.batch_predict(bundle, [images], out, ray_address=cluster, batch_size=4, progress=False)
    assert again.new_images == 0 and again.images == 25  # a finished Ray job is not run twice
