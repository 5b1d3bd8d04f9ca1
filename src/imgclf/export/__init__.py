"""Ship it fast, and prove what each step changes: ONNX export with a parity check, inference engines, int8
quantization, structured pruning, distillation loss, and benchmarking.

Everything works on plain ``nn.Module`` objects and string metadata; bundles are wired in by higher layers.
onnx / onnxruntime are imported only inside the functions that need them (extra ``export``).

>>> path = export_onnx(model, "out/model.onnx", input_size=32, metadata={"class_names": '["a", "b"]'},
...                    parity_images=images)  # doctest: +SKIP
>>> engine = load_engine("onnxruntime", onnx_path=path)  # doctest: +SKIP
>>> engine.predict_logits(images).shape  # doctest: +SKIP
(8, 2)
"""

from imgclf.export._bench import BenchResult, benchmark_engine, benchmark_engines, file_size, measure_peak_gflops
from imgclf.export._bundle_export import (
    INT8_FILE,
    ONNX_FILE,
    BenchmarkRow,
    ExportResult,
    benchmark_bundle,
    export_bundle,
    make_engine,
    resolve_model,
)
from imgclf.export._distill import distillation_loss
from imgclf.export._distill_training import DistillationObjective, TeacherSignal
from imgclf.export._engines import ENGINES, Engine, OnnxRuntimeEngine, TorchEngine, TorchFastEngine, load_engine
from imgclf.export._flops import count_flops
from imgclf.export._onnx_export import EXPORTERS, export_onnx
from imgclf.export._onnx_io import check_external_data, check_onnx_weights, load_onnx, read_onnx_metadata
from imgclf.export._parity import ExportParityError, Parity, compare_logits, parity_check
from imgclf.export._prune import prune_channels
from imgclf.export._quantize import QUANT_MODES, quantize_onnx
from imgclf.export._runtime import physical_cores, tune_malloc
from imgclf.utils import publish

__all__ = [
    "INT8_FILE",
    "ONNX_FILE",
    "BenchmarkRow",
    "DistillationObjective",
    "ExportResult",
    "TeacherSignal",
    "benchmark_bundle",
    "export_bundle",
    "make_engine",
    "resolve_model",
    "ENGINES",
    "EXPORTERS",
    "QUANT_MODES",
    "BenchResult",
    "Engine",
    "ExportParityError",
    "OnnxRuntimeEngine",
    "Parity",
    "TorchEngine",
    "TorchFastEngine",
    "benchmark_engine",
    "benchmark_engines",
    "check_external_data",
    "check_onnx_weights",
    "compare_logits",
    "count_flops",
    "distillation_loss",
    "export_onnx",
    "file_size",
    "load_engine",
    "load_onnx",
    "measure_peak_gflops",
    "parity_check",
    "physical_cores",
    "prune_channels",
    "quantize_onnx",
    "read_onnx_metadata",
    "tune_malloc",
]

publish(__name__, globals(), __all__)
