"""The training loop and its callbacks, checkpoints, distributed set-up, and the batched inference loop."""

from imgclf.engine._callbacks import Callback
from imgclf.engine._callbacks_builtin import (
    BatchMix,
    Checkpointer,
    DataInit,
    EarlyStopping,
    FrozenNorms,
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
    init_distributed,
    local_device,
    resolve_amp,
    resolve_device,
)
from imgclf.engine._elastic import elastic_resume, last_checkpoint
from imgclf.engine._ema import EMA
from imgclf.engine._inference import (
    HedgedRunner,
    InferenceOutput,
    Runner,
    autocast,
    logits_and_features,
    predict_logits,
    run_inference,
)
from imgclf.engine._loop import Trainer, fit_resumable, validate
from imgclf.engine._progress import ProgressBar
from imgclf.engine._state import TrainState
from imgclf.engine._stream import StreamChunk, stream_logits
from imgclf.utils import publish

__all__ = [
    "Callback",
    "BatchMix",
    "DataInit",
    "Checkpointer",
    "EarlyStopping",
    "FrozenNorms",
    "GracefulStop",
    "MetricsLogger",
    "ProgressBar",
    "EMA",
    "Trainer",
    "TrainState",
    "StreamChunk",
    "DistInfo",
    "HedgedRunner",
    "InferenceOutput",
    "Runner",
    "autocast",
    "barrier",
    "capture_state",
    "cleanup_distributed",
    "elastic_resume",
    "fit_resumable",
    "improved",
    "init_distributed",
    "last_checkpoint",
    "load_checkpoint",
    "logits_and_features",
    "local_device",
    "predict_logits",
    "resolve_amp",
    "resolve_device",
    "restore_state",
    "run_inference",
    "save_checkpoint",
    "stream_logits",
    "unprefixed",
    "validate",
]

publish(__name__, globals(), __all__)
