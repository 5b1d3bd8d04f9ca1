"""The training loop and its callbacks, checkpoints, distributed set-up, and the batched inference loop."""

from imgclf.engine._callbacks import Callback
from imgclf.engine._callbacks_builtin import (
    BatchMix,
    Checkpointer,
    EarlyStopping,
    GracefulStop,
    MetricsLogger,
    capture_state,
    improved,
    restore_state,
)
from imgclf.engine._checkpoint import load_checkpoint, save_checkpoint, unprefixed
from imgclf.engine._device import (
    DistInfo,
    barrier,
    cleanup_distributed,
    cpu_supports_bf16,
    init_distributed,
    local_device,
    resolve_amp,
    resolve_device,
)
from imgclf.engine._ema import EMA
from imgclf.engine._inference import (
    InferenceOutput,
    Runner,
    autocast,
    logits_and_features,
    predict_logits,
    run_inference,
)
from imgclf.engine._loop import Trainer
from imgclf.engine._progress import ProgressBar
from imgclf.engine._state import TrainState
from imgclf.utils import publish

__all__ = [
    "Callback",
    "BatchMix",
    "Checkpointer",
    "EarlyStopping",
    "GracefulStop",
    "MetricsLogger",
    "ProgressBar",
    "EMA",
    "Trainer",
    "TrainState",
    "DistInfo",
    "InferenceOutput",
    "Runner",
    "autocast",
    "barrier",
    "capture_state",
    "cleanup_distributed",
    "cpu_supports_bf16",
    "improved",
    "init_distributed",
    "load_checkpoint",
    "logits_and_features",
    "local_device",
    "predict_logits",
    "resolve_amp",
    "resolve_device",
    "restore_state",
    "run_inference",
    "save_checkpoint",
    "unprefixed",
]

publish(__name__, globals(), __all__)
