"""Workflows: everything that calls a lower layer many times or on many machines — seeds and folds, prune +
fine-tune, distillation with its no-teacher baseline, batch inference at scale (a local streaming pipeline, or a
Ray cluster).

>>> from imgclf import workflows
>>> # workflows.train_repeated(cfg, seeds=3).mean
>>> # workflows.batch_predict("runs/x/bundle", ["photos/"], "preds.parquet", ray_address="auto")
"""

from imgclf.utils import publish
from imgclf.workflows._batch import MANIFEST, BatchResult, batch_predict, part_name
from imgclf.workflows._batch_ray import BatchPredictor
from imgclf.workflows._batch_rows import RowSettings, arrow_schema, prediction_rows
from imgclf.workflows._compress import DistillResult, PruneResult, distill, prune_bundle
from imgclf.workflows._ensemble import DISAGREEMENT_FILE, EnsembleResult, build_ensemble
from imgclf.workflows._federate import FederateResult, federate, local_train, partition
from imgclf.workflows._privacy_audit import PrivacyAudit, audit_bundle
from imgclf.workflows._repeat import RepeatResult, train_repeated
from imgclf.workflows._tune import DEFAULT_SPACE, PruningCallback, TuneResult, checks_per_epoch, load_space, tune

__all__ = [
    "DEFAULT_SPACE",
    "PruningCallback",
    "checks_per_epoch",
    "TuneResult",
    "load_space",
    "tune",
    "DISAGREEMENT_FILE",
    "EnsembleResult",
    "build_ensemble",
    "MANIFEST",
    "BatchPredictor",
    "BatchResult",
    "DistillResult",
    "FederateResult",
    "PrivacyAudit",
    "PruneResult",
    "RepeatResult",
    "RowSettings",
    "arrow_schema",
    "audit_bundle",
    "batch_predict",
    "distill",
    "federate",
    "local_train",
    "part_name",
    "partition",
    "prediction_rows",
    "prune_bundle",
    "train_repeated",
]

publish(__name__, globals(), __all__)
