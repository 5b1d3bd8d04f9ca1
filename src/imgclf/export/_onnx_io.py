"""Reading ONNX files safely: every external-data reference must stay inside the file's own directory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from imgclf.errors import BundleError
from imgclf.utils import optional_import

#: The metadata key holding the sha256 of the bundle weights (``model.safetensors``) a file was exported from.
WEIGHTS_SHA_KEY = "imgclf_weights_sha256"

#: Metadata keys that imgclf itself writes into exported files (users cannot override them).
RESERVED_KEYS = ("imgclf.exporter", "imgclf.opset", "imgclf.parity", "imgclf.precision", "imgclf.quantization")


def _tensors(graph: Any) -> Iterator[Any]:
    """Every TensorProto of ``graph``: initializers, sparse initializers, node attributes, subgraphs (recursively)."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _tensors(attr.g)
            for sub in attr.graphs:
                yield from _tensors(sub)


def external_locations(proto: Any) -> list[str]:
    """The ``location`` of every tensor of ``proto`` whose data lives in an external file."""
    onnx = optional_import("onnx", "export")
    out = []
    for tensor in _tensors(proto.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            loc = next((e.value for e in tensor.external_data if e.key == "location"), "")
            out.append(loc)
    return out


def check_external_data(path: str | os.PathLike) -> Path:
    """Refuse an ONNX file whose external-data references leave its directory; return the resolved path.

    An ONNX file may point to weight files anywhere (``../../etc/passwd``, absolute paths, symlinks); a model
    handed to us must not make us read outside its own folder.

    >>> check_external_data("bundle/model.onnx")  # doctest: +SKIP
    PosixPath('/abs/bundle/model.onnx')
    """
    onnx = optional_import("onnx", "export")
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"ONNX file {path} does not exist; export the model first (imgclf export MODEL).")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises several unrelated types on corrupt input
        raise BundleError(f"{path} is not a readable ONNX model ({exc}); re-export it.") from exc
    base = path.resolve().parent
    for loc in external_locations(proto):
        target = (base / loc).resolve()
        if not loc or Path(loc).is_absolute() or not target.is_relative_to(base):
            raise BundleError(
                f"{path} refers to external weight data at {loc!r}, outside its directory {base}; imgclf only "
                "reads files from inside the model's directory. Re-export the model as one self-contained file."
            )
        if not target.is_file():
            raise BundleError(f"{path} needs external weight data {loc!r}, which is missing from {base}.")
    return path.resolve()


def load_onnx(path: str | os.PathLike) -> Any:
    """Load an ONNX ``ModelProto`` after :func:`check_external_data` (external data, if any, is read in).

    >>> proto = load_onnx("bundle/model.onnx")  # doctest: +SKIP
    """
    onnx = optional_import("onnx", "export")
    resolved = check_external_data(path)
    return onnx.load(str(resolved), load_external_data=True)


def read_onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict (class names, preprocessing, parity... as JSON strings).

    >>> json.loads(read_onnx_metadata("model.onnx")["class_names"])  # doctest: +SKIP
    ['ant', 'bee']
    """
    onnx = optional_import("onnx", "export")
    check_external_data(path)
    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


def check_onnx_weights(path: str | os.PathLike, weights_sha256: str) -> Path:
    """Refuse an exported ONNX file that was not exported from the weights with sha256 ``weights_sha256``.

    ``imgclf export`` records the bundle's weights sha in the file's metadata; a ``model.onnx`` left beside
    weights that changed since (a resumed or retrained run, copied weights) would otherwise be served under the
    new weights' version. Returns the resolved path. An empty ``weights_sha256`` (a bundle without one) is not
    checked.

    >>> check_onnx_weights("bundle/model.onnx", meta.weights_sha256)  # doctest: +SKIP
    """
    path = Path(path)
    meta = read_onnx_metadata(path)
    recorded = meta.get(WEIGHTS_SHA_KEY)
    if weights_sha256 and recorded != weights_sha256:
        was = f"from weights {recorded[:12]}" if recorded else "without a record of its weights"
        again = f"imgclf export {path.parent} --format onnx" + (" --quantize int8" if "int8" in path.name else "")
        raise BundleError(f"{path} is stale: it was exported {was}, but the bundle's model.safetensors is "
                          f"{weights_sha256[:12]}. Re-export it: {again}")  # fmt: skip
    return path.resolve()


def set_metadata(proto: Any, metadata: dict[str, str]) -> None:
    """Set (add or replace) ``metadata_props`` entries of ``proto`` in place."""
    existing = {p.key: p for p in proto.metadata_props}
    for key, value in metadata.items():
        if key in existing:
            existing[key].value = value
        else:
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value


def serialize_self_contained(proto: Any, what: str) -> bytes:
    """Serialize ``proto`` to bytes, refusing models that still reference external data or exceed protobuf's 2 GiB."""
    if external_locations(proto):
        raise BundleError(f"{what} still references external data files; imgclf writes self-contained ONNX files.")
    if proto.ByteSize() >= 2**31:
        raise BundleError(f"{what} is larger than 2 GiB, which a self-contained ONNX file cannot hold.")
    return proto.SerializeToString()


def onnx_precision(proto: Any) -> str:
    """``"int8"`` when the graph holds quantized operators, else the metadata's precision or ``"fp32"``."""
    quant_ops = {"QuantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger",
                 "DynamicQuantizeLinear"}  # fmt: skip
    if any(node.op_type in quant_ops for node in proto.graph.node):
        return "int8"
    return {p.key: p.value for p in proto.metadata_props}.get("imgclf.precision", "fp32")
