"""Loading ONNX files: external data must stay inside the model's directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from imgclf.errors import BundleError
from imgclf.export import check_external_data, check_onnx_weights, load_engine, load_onnx


def _linear_model(weights: np.ndarray) -> onnx.ModelProto:
    """images (B, 4) @ W (4, 2) -> logits; tiny enough to write with external data by hand."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["images", "W"], ["logits"])], "g",
        [helper.make_tensor_value_info("images", onnx.TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["batch", 2])],
        initializer=[numpy_helper.from_array(weights, "W")],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _with_external(tmp: Path, location: str) -> Path:
    """A model whose weight W is declared to live in ``location`` (relative to the model's directory)."""
    proto = _linear_model(np.ones((4, 2), dtype=np.float32))
    tensor = proto.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "32")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    path = tmp / "model" / "model.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(proto.SerializeToString())
    return path


def test_external_data_inside_directory_is_loaded(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    proto = _linear_model(np.full((4, 2), 0.5, dtype=np.float32))
    onnx.save(proto, str(model_dir / "model.onnx"), save_as_external_data=True, location="weights.bin",
              size_threshold=0)  # fmt: skip
    assert (model_dir / "weights.bin").is_file()
    loaded = load_onnx(model_dir / "model.onnx")
    np.testing.assert_array_equal(numpy_helper.to_array(loaded.graph.initializer[0]), 0.5)


@pytest.mark.parametrize("location", ["../secret.bin", "sub/../../secret.bin"])
def test_external_data_outside_directory_is_refused(tmp_path: Path, location: str) -> None:
    (tmp_path / "secret.bin").write_bytes(b"\0" * 32)
    path = _with_external(tmp_path, location)
    with pytest.raises(BundleError, match="outside its directory"):
        check_external_data(path)
    with pytest.raises(BundleError, match="outside its directory"):
        load_engine("onnxruntime", onnx_path=path)


def test_absolute_external_path_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\0" * 32)
    with pytest.raises(BundleError, match="outside its directory"):
        load_onnx(_with_external(tmp_path, str(secret)))


def test_symlink_escaping_the_directory_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\0" * 32)
    path = _with_external(tmp_path, "weights.bin")
    (path.parent / "weights.bin").symlink_to(secret)
    with pytest.raises(BundleError, match="outside its directory"):
        load_onnx(path)


def test_missing_or_corrupt_file_is_a_bundle_error(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="does not exist"):
        load_onnx(tmp_path / "nope.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"not a protobuf at all")
    with pytest.raises(BundleError, match="not a readable ONNX model"):
        load_onnx(tmp_path / "bad.onnx")


def _with_sha(tmp: Path, sha: str | None) -> Path:
    proto = _linear_model(np.ones((4, 2), dtype=np.float32))
    if sha is not None:
        helper.set_model_props(proto, {"imgclf_weights_sha256": sha})
    path = tmp / "bundle" / "model.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(proto.SerializeToString())
    return path


def test_onnx_exported_from_other_weights_is_refused_as_stale(tmp_path: Path) -> None:
    path = _with_sha(tmp_path, "a" * 64)
    assert check_onnx_weights(path, "a" * 64) == path.resolve()
    with pytest.raises(BundleError, match=r"stale: it was exported from weights aaaaaaaaaaaa, but .*bbbbbbbbbbbb\. "
                                          r"Re-export it: imgclf export .*bundle --format onnx"):
        check_onnx_weights(path, "b" * 64)
    unrecorded = _with_sha(tmp_path / "old", None)
    with pytest.raises(BundleError, match="without a record of its weights"):
        check_onnx_weights(unrecorded, "b" * 64)
    assert check_onnx_weights(unrecorded, "") == unrecorded.resolve()  # a bundle without a sha: nothing to check
