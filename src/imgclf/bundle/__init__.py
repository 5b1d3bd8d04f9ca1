"""The model bundle: a directory with ``model.safetensors`` and ``imgclf.json`` (DESIGN.md section 4)."""

from imgclf.bundle._arrays import REJECTION_FILE, load_arrays, save_arrays
from imgclf.bundle._bundle import (
    BUNDLE_FILE,
    SCHEMA_VERSION,
    WEIGHTS_FILE,
    Bundle,
    BundleMeta,
    library_versions,
    load_bundle,
    read_meta,
    save_bundle,
    update_meta,
)
from imgclf.bundle._data import SPLITS, same_source, split_samples, training_source
from imgclf.utils import publish

__all__ = [
    "REJECTION_FILE",
    "load_arrays",
    "save_arrays",
    "BUNDLE_FILE",
    "SCHEMA_VERSION",
    "SPLITS",
    "WEIGHTS_FILE",
    "Bundle",
    "BundleMeta",
    "library_versions",
    "load_bundle",
    "read_meta",
    "same_source",
    "save_bundle",
    "split_samples",
    "training_source",
    "update_meta",
]

publish(__name__, globals(), __all__)
