"""``imgclf batch``: predictions for many images into a parquet dataset, resumable shard by shard.

The output ``OUT`` (e.g. ``preds.parquet``) is a directory any parquet reader opens as one table
(``pandas.read_parquet(OUT)``, ``pyarrow.dataset.dataset(OUT)``, Spark, DuckDB ``OUT/*.parquet``):

- ``part-00000.parquet``, ``part-00001.parquet`` ...: shard ``i`` holds inputs ``i*S .. (i+1)*S - 1`` of the
  expanded input list (``S`` = ``shard_size``), one row per image in input order. Each part is written to a
  temporary file and renamed, so a part that exists is complete.
- ``_imgclf_batch.json`` (ignored by parquet readers: leading underscore): what the job is (model sha256, input
  count and digest, settings) and, once finished, the totals. A rerun with the same job skips every part already
  written; a different job in the same folder is refused rather than mixed in.

With ``ray_address`` the same rows are computed on a Ray cluster (see :mod:`imgclf.workflows._batch_ray`);
Ray names its own part files, and an unfinished Ray run is started over.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from imgclf import data as D
from imgclf import engine as E
from imgclf.api import Classifier, load
from imgclf.data import expand_inputs
from imgclf.errors import ConfigError, DataError
from imgclf.utils import atomic_write_bytes, atomic_write_text, optional_import
from imgclf.workflows._batch_ray import run_on_ray
from imgclf.workflows._batch_rows import RowSettings, chunks_table, engine_runner, wants_features

MANIFEST = "_imgclf_batch.json"
FORMAT = 1


def part_name(shard: int) -> str:
    """The file of shard ``shard`` inside the output folder, e.g. ``part-00003.parquet``."""
    return f"part-{shard:05d}.parquet"


@dataclass(frozen=True)
class BatchResult:
    """What a batch run wrote: ``images`` rows (``errors`` of them unreadable files) in ``out``; ``shards_skipped``
    parts were already there from an earlier run; ``seconds`` and ``images_per_s`` cover this run's new rows."""

    out: Path
    images: int
    errors: int
    shards: int
    shards_skipped: int
    seconds: float
    new_images: int
    runner: str

    @property
    def images_per_s(self) -> float:
        return self.new_images / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "images": self.images, "errors": self.errors, "shards": self.shards,
                "shards_skipped": self.shards_skipped, "seconds": round(self.seconds, 3),
                "new_images": self.new_images, "images_per_s": round(self.images_per_s, 2),
                "runner": self.runner}  # fmt: skip


def _identity(clf: Classifier, paths: Sequence[str], settings: RowSettings, *, shard_size: int, engine: str,
              runner: str) -> dict[str, Any]:  # fmt: skip
    digest = hashlib.sha256("\n".join(paths).encode()).hexdigest()
    meta = clf.meta_
    return {"format": FORMAT, "runner": runner, "weights_sha256": meta.weights_sha256, "classes": list(meta.classes),
            "engine": engine, "inputs": len(paths), "inputs_sha256": digest, "shard_size": shard_size,
            **settings.to_dict()}  # fmt: skip


def _open_output(out: Path, identity: dict[str, Any]) -> dict[str, Any]:
    """The manifest of ``out`` for this job: created when new, checked against ``identity`` when resumed."""
    manifest_path = out / MANIFEST
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; batch output is a folder of parquet parts: choose a new name")
    if manifest_path.is_file():
        old = json.loads(manifest_path.read_text())
        differs = [k for k in identity if old.get("job", {}).get(k) != identity[k]]
        if differs:
            raise ConfigError(f"--out {out} holds the results of another batch job (different {', '.join(differs)}); "
                              "choose a new --out, or delete the folder to start over")  # fmt: skip
        return old
    if out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"--out {out} is a non-empty folder without {MANIFEST}, not an imgclf batch output; "
                          "choose a new --out")  # fmt: skip
    manifest = {"job": identity, "complete": False}
    atomic_write_text(manifest_path, json.dumps(manifest, indent=2) + "\n")
    return manifest


def _part_complete(path: Path, rows: int) -> bool:
    if not path.is_file():
        return False
    pq = optional_import("pyarrow.parquet", "batch")
    try:
        return pq.read_metadata(path).num_rows == rows
    except (OSError, ValueError):  # pyarrow's ArrowInvalid is a ValueError: a damaged part is redone
        return False


def _count_errors(out: Path) -> tuple[int, int]:
    ds = optional_import("pyarrow.dataset", "batch")
    table = ds.dataset(str(out), format="parquet").to_table(columns=["error"])
    return table.num_rows, table.num_rows - table.column("error").null_count


def _progress(console: Console | None, enabled: bool) -> Progress:
    columns = (TextColumn("batch"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
               TimeRemainingColumn())  # fmt: skip
    return Progress(*columns, console=console or Console(stderr=True), disable=not enabled, transient=False)


def _run_local(clf: Classifier, paths: list[str], out: Path, settings: RowSettings, *, shard_size: int,
               batch_size: int, workers: int, progress: Progress) -> tuple[int, int]:  # fmt: skip
    """Write every missing part; returns (parts skipped, images predicted now)."""
    pq, pa = optional_import("pyarrow.parquet", "batch"), optional_import("pyarrow", "batch")
    model, meta = clf.model_, clf.meta_
    shards = [range(a, min(a + shard_size, len(paths))) for a in range(0, len(paths), shard_size)]
    pending = [s for s, r in enumerate(shards) if not _part_complete(out / part_name(s), len(r))]
    done_before = len(paths) - sum(len(shards[s]) for s in pending)
    batches = [range(b, min(b + batch_size, r.stop)) for s in pending for r in (shards[s],)
               for b in range(r.start, r.stop, batch_size)]  # fmt: skip
    forward = engine_runner(clf)
    device = next(model.parameters()).device
    stream = E.stream_logits(model, paths, D.build_eval_transform(meta.preprocessing), batches=batches,
                             workers=workers, device=device, runner=forward,
                             features=wants_features(meta))  # fmt: skip
    task = progress.add_task("batch", total=len(paths), completed=done_before, rate="")
    start, new = time.perf_counter(), 0
    for s in pending:
        r = shards[s]
        chunks = []
        while sum(c.size for c in chunks) < len(r):
            chunks.append(next(stream))
            new += chunks[-1].size
            progress.update(task, advance=chunks[-1].size,
                            rate=f"{new / max(time.perf_counter() - start, 1e-9):.1f} img/s")  # fmt: skip
        table = chunks_table(meta, paths[r.start : r.stop], r.start, chunks, settings, clf.bundle_.rejection_stats)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        atomic_write_bytes(out / part_name(s), sink.getvalue().to_pybytes())
    return len(shards) - len(pending), new


def batch_predict(
    model: str | Path,
    inputs: Iterable[str | Path],
    out: str | Path,
    *,
    engine: str = "torch",
    settings: RowSettings = RowSettings(),
    batch_size: int = 64,
    workers: int | None = None,
    shard_size: int = 4096,
    ray_address: str | None = None,
    ray_actors: int | None = None,
    console: Console | None = None,
    progress: bool = True,
) -> BatchResult:
    """Predict every image of ``inputs`` (files, folders, globs) with the bundle ``model`` into the parquet folder
    ``out``: one row per image with the fields of ``imgclf predict --json`` (unreadable files get ``error``).

    Locally, ``workers`` processes decode while the model runs (default :func:`imgclf.data.default_workers`);
    a rerun skips the parts already written. ``ray_address`` (``auto``, ``HOST:PORT``, ``ray://...`` or ``local``)
    runs the same rows on Ray Data with ``ray_actors`` model-holding actors (default: one per CPU of the cluster).

    >>> # batch_predict("runs/x/bundle", ["photos/"], "preds.parquet").images
    """
    if batch_size < 1 or shard_size < 1:
        raise ConfigError(f"batch_size={batch_size} and shard_size={shard_size} must be >= 1")
    optional_import("pyarrow.parquet", "batch")
    paths = expand_inputs(inputs)
    if not paths:
        raise DataError("no images found in the inputs; give image files, folders or globs")
    out = Path(out)
    runner = "ray" if ray_address else "local"
    clf = load(model, engine=engine)
    identity = _identity(clf, paths, settings, shard_size=shard_size, engine=engine, runner=runner)
    manifest = _open_output(out, identity)
    start = time.perf_counter()
    if manifest.get("complete") and not ray_address:  # the totals are recounted when this run ends
        manifest["complete"] = False
        atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    if ray_address and manifest.get("complete"):
        skipped, new = manifest["shards"], 0  # a finished Ray run: its parts carry Ray's names, kept as they are
    elif ray_address:
        run_on_ray(ray_address, Path(model), paths, out, settings, engine=engine, batch_size=batch_size,
                   actors=ray_actors)  # fmt: skip
        skipped, new = 0, len(paths)
    else:
        workers = D.default_workers() if workers is None else workers
        with _progress(console, progress) as bar:
            skipped, new = _run_local(clf, paths, out, settings, shard_size=shard_size, batch_size=batch_size,
                                      workers=workers, progress=bar)  # fmt: skip
    seconds = time.perf_counter() - start
    images, errors = _count_errors(out)
    if images != len(paths):
        raise DataError(f"{out} holds {images} rows for {len(paths)} inputs; delete the folder and run again")
    shards = len(list(out.glob("*.parquet")))
    manifest.update(complete=True, images=images, errors=errors, shards=shards)
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return BatchResult(out, images, errors, shards, skipped, seconds, new, runner)
