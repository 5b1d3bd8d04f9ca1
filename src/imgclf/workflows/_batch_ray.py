"""``imgclf batch --ray``: read the paths -> ``map_batches`` on an actor pool holding the model -> write_parquet.

Every node of the cluster must see the bundle and the images at the paths the driver lists (shared storage),
and have imgclf installed; the output folder must be writable from the nodes too.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from imgclf import data as D
from imgclf import engine as E
from imgclf.utils import optional_import
from imgclf.workflows._batch_rows import RowSettings, chunks_table, engine_runner, wants_features


class BatchPredictor:
    """A Ray Data actor: loads the bundle once, then turns each batch of paths into result rows.

    >>> # ds.map_batches(BatchPredictor, fn_constructor_kwargs={"model": "runs/x/bundle"}, concurrency=4)
    """

    def __init__(self, model: str, engine: str = "torch", settings: dict[str, Any] | None = None) -> None:
        from imgclf.api import load

        self.clf = load(model, engine=engine)
        self.settings = RowSettings(**(settings or {}))
        self.transform = D.build_eval_transform(self.clf.meta_.preprocessing)
        self.forward = engine_runner(self.clf)

    def __call__(self, batch: dict[str, np.ndarray]) -> Any:
        """``{"path": shown (N,), "file": absolute (N,)}`` -> a ``pyarrow.Table`` of N rows."""
        paths = [str(p) for p in batch["path"]]
        files = [str(p) for p in batch["file"]] if "file" in batch else paths
        chunks = list(E.stream_logits(self.clf.model_, files, self.transform, batch_size=max(1, len(paths)),
                                      workers=0, runner=self.forward,
                                      features=wants_features(self.clf.meta_)))  # fmt: skip
        return chunks_table(self.clf.meta_, paths, 0, chunks, self.settings, self.clf.bundle_.rejection_stats)


def run_on_ray(address: str, model: Path, paths: list[str], out: Path, settings: RowSettings, *, engine: str,
               batch_size: int, actors: int | None) -> None:  # fmt: skip
    """Run the rows of ``paths`` on the Ray cluster at ``address`` (``local``: a Ray instance started here) into
    ``out``; parts of an unfinished earlier run there are removed first."""
    ray = optional_import("ray", "batch")
    optional_import("ray.data", "batch")
    started = not ray.is_initialized()
    if started:
        ray.init(address=None if address == "local" else address, log_to_driver=False)
    try:
        actors = actors or max(1, int(ray.cluster_resources().get("CPU", 1)))
        for part in out.glob("*.parquet"):
            part.unlink()
        blocks = max(1, min(math.ceil(len(paths) / batch_size), 8 * actors))
        # Rows show each path as given; the actors open it by absolute path (their working folder is not ours).
        items = [{"path": p, "file": str(Path(p).resolve())} for p in paths]
        ds = ray.data.from_items(items, override_num_blocks=blocks)
        kwargs = {"model": str(Path(model).resolve()), "engine": engine, "settings": settings.to_dict()}
        ds = ds.map_batches(BatchPredictor, batch_size=batch_size, batch_format="numpy", num_cpus=1,
                            compute=ray.data.ActorPoolStrategy(size=actors), fn_constructor_kwargs=kwargs)
        # Writers take no CPU slot: with every CPU held by an actor they would otherwise wait for the actors to
        # finish, and the results would pile up in the object store instead of streaming to disk.
        ds.write_parquet(str(out.resolve()), ray_remote_args={"num_cpus": 0})
    finally:
        if started:
            ray.shutdown()
