"""Core helpers with no imgclf dependencies: atomic files, hashing, seeding, optional imports."""

from imgclf.utils._figures import save_figure
from imgclf.utils._files import atomic_write_bytes, atomic_write_text, sha256_bytes, sha256_file
from imgclf.utils._imports import optional_import
from imgclf.utils._public import publish
from imgclf.utils._seed import seed_everything
from imgclf.utils._suggest import closest
from imgclf.utils._torch import cpu_supports_bf16, eval_mode, fast_bf16, model_device

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "sha256_bytes",
    "sha256_file",
    "optional_import",
    "publish",
    "seed_everything",
    "closest",
    "eval_mode",
    "model_device",
    "cpu_supports_bf16",
    "fast_bf16",
    "save_figure",
]

publish(__name__, globals(), __all__)
