"""Everything that runs a lower layer many times or on many machines: batch inference at scale (locally in a
streaming pipeline, or on a Ray cluster).

>>> from imgclf import workflows
>>> # workflows.batch_predict("runs/x/bundle", ["photos/"], "preds.parquet", ray_address="auto")
"""

from imgclf.workflows._batch import MANIFEST, BatchResult, batch_predict, part_name
from imgclf.workflows._batch_ray import BatchPredictor
from imgclf.workflows._batch_rows import RowSettings, arrow_schema, prediction_rows

__all__ = [
    "MANIFEST",
    "BatchPredictor",
    "BatchResult",
    "RowSettings",
    "arrow_schema",
    "batch_predict",
    "part_name",
    "prediction_rows",
]
