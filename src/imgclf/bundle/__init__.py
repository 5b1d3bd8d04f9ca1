"""The model bundle: a directory with ``model.safetensors`` and ``imgclf.json`` (DESIGN.md section 4)."""

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

__all__ = [
    "BUNDLE_FILE",
    "SCHEMA_VERSION",
    "WEIGHTS_FILE",
    "Bundle",
    "BundleMeta",
    "library_versions",
    "load_bundle",
    "read_meta",
    "save_bundle",
    "update_meta",
]
