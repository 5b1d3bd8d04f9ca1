"""PyTorch -> ONNX: dynamic batch, metadata, a parity check before anything is written, one self-contained file."""

from __future__ import annotations

import io
import logging
import os
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from imgclf.errors import ConfigError, ModelError
from imgclf.export._onnx_io import RESERVED_KEYS, serialize_self_contained, set_metadata
from imgclf.export._parity import ExportParityError, parity_on
from imgclf.utils import atomic_write_bytes, closest, eval_mode, model_device, optional_import

log = logging.getLogger(__name__)

EXPORTERS = ("auto", "dynamo", "torchscript")
INPUT_NAME, OUTPUT_NAME, FEATURES_NAME = "images", "logits", "features"


class LogitsAndFeatures(nn.Module):
    """``model`` with two outputs: logits ``(B, K)`` and pooled pre-logit features ``(B, D)`` from the same pass
    (so exported inference can apply feature-space rejection rules)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.model.forward_features(x)
        return self.model.forward_head(f), self.model.forward_head(f, pre_logits=True)  # (B, K), (B, D)


def _outputs(model: nn.Module) -> list[str]:
    return [OUTPUT_NAME, FEATURES_NAME] if isinstance(model, LogitsAndFeatures) else [OUTPUT_NAME]


def _export_dynamo(model: nn.Module, example: torch.Tensor, opset: int, dynamic_batch: bool) -> Any:
    """torch.export-based exporter; returns the ModelProto (opset raised to 18, its minimum)."""
    shapes = ({0: torch.export.Dim("batch", min=1)},) if dynamic_batch else None
    program = torch.onnx.export(
        model, (example,), None, input_names=[INPUT_NAME], output_names=_outputs(model),
        opset_version=max(opset, 18), dynamo=True, dynamic_shapes=shapes, external_data=False, verbose=False,
    )  # fmt: skip
    return program.model_proto


def _export_torchscript(model: nn.Module, example: torch.Tensor, opset: int, dynamic_batch: bool) -> Any:
    """The TorchScript-based exporter (deprecated upstream, kept as a fallback); returns the ModelProto."""
    onnx = optional_import("onnx", "export")
    axes = {name: {0: "batch"} for name in [INPUT_NAME, *_outputs(model)]} if dynamic_batch else None
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message="Constant folding", category=UserWarning)  # internal notice
        torch.onnx.export(
            model, (example,), buf, input_names=[INPUT_NAME], output_names=_outputs(model), opset_version=opset,
            dynamo=False, dynamic_axes=axes, do_constant_folding=True,
        )  # fmt: skip
    return onnx.load_from_string(buf.getvalue())


def _reason(exc: BaseException) -> str:
    """The innermost cause of an exporter failure, as one line without terminal colour codes."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:300]


_EXPORT_FUNCTIONS = {"dynamo": _export_dynamo, "torchscript": _export_torchscript}


def _check_args(path: Path, input_size: int, metadata: dict[str, str], opset: int, exporter: str) -> None:
    if exporter not in EXPORTERS:
        raise ConfigError(f"unknown exporter {exporter!r}; choose one of {EXPORTERS}.{closest(exporter, EXPORTERS)}")
    if opset < 17:
        raise ConfigError(f"opset {opset} is too old; imgclf exports opset 17 or newer.")
    if not isinstance(input_size, int) or input_size < 1:
        raise ConfigError(f"input_size must be a positive int (pixels), got {input_size!r}.")
    if path.suffix != ".onnx":
        raise ConfigError(f"export path {path} should end in .onnx.")
    bad = [k for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad:
        raise ConfigError(f"ONNX metadata values must be strings (JSON-encode them); not strings: {bad}.")
    taken = sorted(set(metadata) & set(RESERVED_KEYS))
    if taken:
        raise ConfigError(f"metadata keys {taken} are written by imgclf itself; rename yours.")


def _run_exporters(model: nn.Module, example: torch.Tensor, opset: int, dynamic_batch: bool,
                   exporter: str) -> tuple[Any, str, list[str]]:  # fmt: skip
    order = ["dynamo", "torchscript"] if exporter == "auto" else [exporter]
    failures = []
    for name in order:
        try:
            return _EXPORT_FUNCTIONS[name](model, example, opset, dynamic_batch), name, failures
        except Exception as exc:  # exporters raise many unrelated types; we report them all below
            failures.append(f"{name}: {_reason(exc)}")
            if name != order[-1]:
                log.warning("dynamo ONNX export failed (%s); falling back to the TorchScript exporter", failures[-1])
    raise ModelError(
        f"cannot export {type(model).__name__} to ONNX; tried " + "; ".join(failures) + ". Models with "
        "data-dependent Python control flow or custom ops may need rewriting; try exporter='torchscript'."
    )


def export_onnx(model: nn.Module, path: str | os.PathLike, *, input_size: int, metadata: dict[str, str],
                opset: int = 18, dynamic_batch: bool = True, parity_images: Any = None, atol: float = 1e-3,
                min_agreement: float = 0.99, exporter: str = "auto", features: bool = False) -> Path:  # fmt: skip
    """Export ``model`` to one self-contained ONNX file at ``path`` (input ``images``, output ``logits``).

    The dynamo (torch.export) exporter is tried first, then the TorchScript one (``exporter`` forces one); the
    one used is logged and stored in the metadata key ``imgclf.exporter``. The batch axis is dynamic unless
    ``dynamic_batch=False``. ``metadata`` (strings, e.g. JSON of class names, preprocessing, temperature) lands in
    the file's ``metadata_props``. With ``parity_images`` (normalised ``(N, 3, H, W)``) the exported graph is run
    in onnxruntime before anything is written; a max |logit difference| above ``atol`` or a top-1 agreement
    below ``min_agreement`` raises :class:`ExportParityError` and leaves no file; the numbers are stored under
    ``imgclf.parity``. The dynamo exporter writes opset >= 18 (its minimum). The file is written atomically.
    ``features=True`` adds a second output ``features``: the pooled pre-logit features of the same pass (the model
    must meet the model contract: ``forward_features`` / ``forward_head``); parity is checked on the logits.

    >>> export_onnx(model, "out/model.onnx", input_size=224, metadata={"class_names": '["ant", "bee"]'},
    ...             parity_images=torch.randn(8, 3, 224, 224))  # doctest: +SKIP
    PosixPath('out/model.onnx')
    """
    path = Path(path)
    _check_args(path, input_size, metadata, opset, exporter)
    gen = torch.Generator().manual_seed(0)
    example = torch.randn(2, 3, input_size, input_size, generator=gen).to(model_device(model))  # (2, 3, S, S)
    graph = LogitsAndFeatures(model) if features else model
    if features:
        graph.training = False  # the wrapper's own flag only; eval_mode below covers the wrapped model
    with eval_mode(model), torch.no_grad():
        proto, used, failed = _run_exporters(graph, example, opset, dynamic_batch, exporter)
    log.info("exported %s to ONNX with the %s exporter (opset %s)", type(model).__name__, used,
             proto.opset_import[0].version)  # fmt: skip
    facts = {"imgclf.exporter": used, "imgclf.opset": str(max(o.version for o in proto.opset_import if not o.domain)),
             "imgclf.precision": "fp32"}  # fmt: skip
    set_metadata(proto, {**metadata, **facts})
    data = serialize_self_contained(proto, f"the ONNX export of {type(model).__name__}")
    if parity_images is not None:
        parity = parity_on(model, data, parity_images, atol=atol, min_agreement=min_agreement)
        if not parity.passed:
            raise ExportParityError(
                f"the ONNX export ({used} exporter) of {type(model).__name__} does not match the PyTorch model: "
                f"{parity.describe()}. {path} was not written. "
                + (f"(First tried: {'; '.join(failed)}.) " if failed else "")
                + "The graph probably misses something the exporter cannot capture (Python-side state, "
                "data-dependent branches, unsupported ops); make forward() a pure tensor computation and re-export.",
                parity,
            )
        set_metadata(proto, {"imgclf.parity": parity.to_json()})
        data = proto.SerializeToString()
    return atomic_write_bytes(path, data)
