"""``export`` / ``benchmark`` and inference engines for bundles: what each step costs, in one table."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imgclf import data as D
from imgclf.bundle import BUNDLE_FILE, Bundle, load_bundle, split_samples, training_source, update_meta
from imgclf.errors import BundleError, ConfigError
from imgclf.export._bench import benchmark_engines, file_size, measure_peak_gflops
from imgclf.export._engines import Engine, load_engine
from imgclf.export._flops import count_flops
from imgclf.export._onnx_export import export_onnx
from imgclf.export._onnx_io import check_onnx_weights
from imgclf.export._parity import Parity, parity_check
from imgclf.export._quantize import quantize_onnx
from imgclf.models import count_parameters

ONNX_FILE = "model.onnx"
CALIBRATION_IMAGES = 128  # int8 calibration images, at most half of the held-out images read
INT8_FILE = "model.int8.onnx"
#: below this top-1 agreement with the fp32 export on held-out images, export warns that int8 changes answers
INT8_AGREEMENT = 0.99


def _held_out(bundle: Bundle, source: str | None, n: int, seed: int = 0
              ) -> tuple[torch.Tensor, torch.Tensor, str]:  # fmt: skip
    """Up to ``n`` real images of ``source`` (default: the training data), from its held-out split (named)."""
    samples, split, _ = split_samples(bundle.meta, training_source(bundle.meta, source), None)
    return (*D.sample_tensors(samples, bundle.meta.preprocessing, n, seed), f"{split} ({len(samples)} images)")


def _metadata(bundle: Bundle) -> dict[str, str]:
    m = bundle.meta
    pre = json.dumps(m.to_dict()["preprocessing"])
    return {"imgclf_classes": json.dumps(list(m.classes)), "imgclf_preprocessing": pre,
            "imgclf_temperature": json.dumps(m.temperature), "imgclf_architecture": m.architecture,
            "imgclf_weights_sha256": m.weights_sha256}  # fmt: skip


@dataclass(frozen=True)
class ExportResult:
    """Files written and what they change: parity for the fp32 export; accuracy and speed for int8."""

    onnx: Path
    parity: Parity
    int8: Path | None = None
    quantization: dict[str, Any] | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"onnx": str(self.onnx), "parity": self.parity.to_dict(),
                "int8": str(self.int8) if self.int8 else None, "quantization": self.quantization,
                "notes": list(self.notes)}  # fmt: skip


def export_bundle(path: str | Path | Bundle, *, quantize: str | None = None, data: str | None = None,
                  out: str | Path | None = None, atol: float = 1e-3,
                  parity_images: int = 64) -> ExportResult:  # fmt: skip
    """Export the bundle (a directory, or a loaded / in-memory :class:`~imgclf.bundle.Bundle`) to ONNX next to it
    (or in ``out``), checked against PyTorch on real images.

    ``quantize``: ``"int8"`` (static) or ``"dynamic"``. Up to 256 images of the held-out split (of the training
    data, or of ``data``) are drawn at random: static int8 calibrates on up to 128 of them (at most half), and the
    accuracy and answer changes are measured on the others, never calibrated on; they and the throughput change
    are recorded in the bundle when exporting beside it.

    >>> # export_bundle("runs/x/bundle", quantize="int8").parity.top1_agreement
    """
    bundle = path if isinstance(path, Bundle) else load_bundle(path)
    if not getattr(bundle.model, "onnx_exportable", True):  # e.g. a classical (scikit-learn) pipeline
        raise ConfigError(f"{bundle.meta.architecture} cannot be exported to ONNX: its features and classifier run "
                          "in scikit-image / scikit-learn, not in a traceable network. Serve the bundle itself "
                          "(`imgclf serve`) or export a neural model")  # fmt: skip
    if out is None and bundle.path is None:
        raise ConfigError("this model is only in memory: give the folder to export into (out=...)")
    out_dir = Path(out) if out else Path(bundle.path)
    x, y, _ = _held_out(bundle, data, max(parity_images, 256 if quantize else 0))
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))  # the split lists class by class
    x, y = x[order], y[order]
    onnx_path = export_onnx(bundle.model, out_dir / ONNX_FILE, input_size=bundle.meta.preprocessing.input_size,
                              metadata=_metadata(bundle), parity_images=x[:parity_images], atol=atol,
                              features=True)  # fmt: skip
    parity = parity_check(bundle.model, onnx_path, x[:parity_images], atol=atol)
    record: dict[str, Any] = {"onnx": {"file": onnx_path.name, "parity": parity.to_dict()}}
    int8_path, quant, notes = None, None, []
    if quantize:
        if quantize not in ("int8", "dynamic"):
            raise ConfigError(f"--quantize {quantize!r}: choose int8 (static) or dynamic")
        mode = "static" if quantize == "int8" else "dynamic"
        if mode == "dynamic" and _convolutional(bundle.model):
            notes.append("dynamic int8 quantizes only Linear/matmul layers and converts activations at run time; on "
                         "a convolutional network it is often slower than fp32. Prefer --quantize int8 (static, "
                         "calibrated) for CNNs; dynamic suits transformer / MLP models")  # fmt: skip
        n_calibration = min(CALIBRATION_IMAGES, len(x) // 2)  # the rest, never calibrated on, measures the change
        int8_path = quantize_onnx(onnx_path, out_dir / INT8_FILE, calibration_images=x[:n_calibration], mode=mode)
        fp32, q = load_engine("onnxruntime", onnx_path=onnx_path), load_engine("onnxruntime", onnx_path=int8_path)
        held_x, held_y = x[n_calibration:], y[n_calibration:]
        logits = [np.asarray(e.predict_logits(held_x)) for e in (fp32, q)]
        acc = [_accuracy(z, held_y) for z in logits]
        agreement = _accuracy(logits[1], torch.as_tensor(logits[0].argmax(1)) if held_y.ndim == 1
                              else torch.as_tensor(logits[0] > 0).float())  # fmt: skip
        speed = benchmark_engines([fp32, q], bundle.meta.preprocessing.input_size, repeats=5,
                                    images=held_x)  # fmt: skip
        quant = {"mode": mode, "file": int8_path.name, "calibration_images": n_calibration,
                 "held_out_images": int(len(held_y)),
                 "accuracy_fp32": acc[0], "accuracy_int8": acc[1], "accuracy_change": acc[1] - acc[0],
                 "agreement": agreement, "throughput_fp32": speed[0].throughput_ips,
                 "throughput_int8": speed[1].throughput_ips,
                 "speedup": speed[1].throughput_ips / max(speed[0].throughput_ips, 1e-9)}  # fmt: skip
        record["int8"] = quant
        if agreement < INT8_AGREEMENT:
            notes.append(f"the {mode} int8 model gives other answers than fp32 for {1 - agreement:.1%} of "
                         f"{len(held_y)} held-out images (accuracy {acc[0]:.1%} -> {acc[1]:.1%}): keep the fp32 "
                         "export, or check the int8 model on your data (measured on ants/bees photos: a trained "
                         "MobileNetV3 changed 24% of its answers, a ResNet-18 0.3%)")  # fmt: skip
        if quant["speedup"] < 1:
            notes.append(f"the {mode} int8 model is {quant['speedup']:.2f}x the fp32 ONNX throughput here: slower; "
                         + ("try --quantize int8 (static)" if mode == "dynamic" else "keep the fp32 export"))
    if bundle.path is not None and out_dir.resolve() == Path(bundle.path).resolve():
        update_meta(bundle.path, extra={**bundle.meta.extra, "exports": record})
    return ExportResult(onnx_path, parity, int8_path, quant, tuple(notes))


def resolve_model(path: str | Path) -> tuple[Path, Path | None]:
    """A bundle directory, or an exported ``.onnx`` file inside one: returns (bundle dir, onnx file or None)."""
    p = Path(path)
    if p.suffix == ".onnx":
        if not p.is_file():
            raise BundleError(f"{p} does not exist; export it first with `imgclf export BUNDLE --format onnx`")
        if not (p.parent / BUNDLE_FILE).is_file():  # e.g. written with `export --out` into a folder of its own
            raise BundleError(f"{p} is not inside a bundle ({p.parent / BUNDLE_FILE} is missing): imgclf runs an "
                              "ONNX file beside the bundle it came from (classes, rejection rule, checks): copy it "
                              "into that bundle and pass the bundle with --engine onnxruntime, or export without "
                              "--out")  # fmt: skip
        return p.parent, p
    return p, None


def make_engine(bundle: Bundle, kind: str, onnx: Path | None = None) -> Engine:
    """An inference engine over the bundle's model: torch, torch-fast, or onnxruntime (its exported file)."""
    if kind == "onnxruntime" or onnx is not None:
        onnx = onnx or bundle.path / ONNX_FILE
        if not onnx.is_file():
            raise BundleError(f"{onnx} is missing; run `imgclf export {bundle.path} --format onnx` first")
        check_onnx_weights(onnx, bundle.meta.weights_sha256)  # a stale export is refused, never served
        return load_engine("onnxruntime", onnx_path=onnx)
    return load_engine(kind, model=bundle.model)


@dataclass(frozen=True)
class BenchmarkRow:
    """One engine / precision / format line of the benchmark table."""

    engine: str
    precision: str
    file: str
    size_mb: float
    latency_ms: tuple[float, float, float]
    throughput_ips: float
    gflops_per_image: float
    efficiency: float
    accuracy: float | None = None
    accuracy_change: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def benchmark_bundle(path: str | Path, data: str | None = None, *, engines: Sequence[str] = ("torch", "torch-fast"),
                     batch_size: int = 32, repeats: int = 10, max_images: int = 256) -> dict[str, Any]:  # fmt: skip
    """One row per engine/precision/format (+ exported ONNX fp32 / int8 when present) with latency p50/p90/p99
    at batch 1, throughput at ``batch_size``, file size, parameters, GFLOPs, efficiency (achieved GFLOP/s over the
    fp32 matmul peak measured in the same run: int8 and bf16 rows can exceed 100%) and, with ``data``, accuracy
    on ``max_images`` held-out images (``accuracy_on`` says how many, from which split) and its change vs eager
    torch."""
    bundle = load_bundle(path)
    size = bundle.meta.preprocessing.input_size
    candidates: list[tuple[Engine, Path]] = [(load_engine(k, model=bundle.model), bundle.path / "model.safetensors")
                                               for k in engines]  # fmt: skip
    for name in (ONNX_FILE, INT8_FILE):
        if (bundle.path / name).is_file():
            check_onnx_weights(bundle.path / name, bundle.meta.weights_sha256)
            candidates.append((load_engine("onnxruntime", onnx_path=bundle.path / name), bundle.path / name))
    x = y = None
    accuracy_on = None
    if data is not None:
        x, y, split = _held_out(bundle, data, max_images)
        accuracy_on = f"{len(y)} images drawn from the {split} split (seeded; pass --max-images to change)"
    results = benchmark_engines([e for e, _ in candidates], size, batch_sizes=(1, batch_size), repeats=repeats,
                                  images=x)  # fmt: skip
    flops = count_flops(bundle.model, size) / 1e9
    peak = measure_peak_gflops()
    rows, base_acc = [], None
    for (engine, file), r in zip(candidates, results):
        acc = None
        if x is not None:
            acc = _accuracy(engine.predict_logits(x), y)
            base_acc = acc if base_acc is None else base_acc
        rows.append(BenchmarkRow(
            engine.name, engine.precision, file.name, file_size(file) / 1e6,
            (r.latency_ms_p50, r.latency_ms_p90, r.latency_ms_p99), r.throughput_ips, flops,
            flops * r.throughput_ips / peak, acc, None if acc is None else acc - base_acc,
        ))  # fmt: skip
    return {"model": bundle.meta.architecture, "input_size": size, "parameters": count_parameters(bundle.model),
            "gflops_per_image": flops, "peak_gflops": peak, "peak_precision": "fp32", "batch_size": batch_size,
            "accuracy_on": accuracy_on, "rows": [r.to_dict() for r in rows]}  # fmt: skip


def _convolutional(model: torch.nn.Module) -> bool:
    """Whether most of the model's weights sit in convolutions (where dynamic quantization does not help)."""
    conv = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    total = sum(p.numel() for p in model.parameters())
    return conv > total / 2


def _accuracy(logits: Any, targets: torch.Tensor) -> float:
    """Top-1 accuracy for class indices ``(N,)``; exact-match ratio (logit > 0 per label) for multi-hot ``(N, C)``."""
    z, y = np.asarray(logits), targets.numpy()
    if y.ndim == 2:
        return float(((z > 0) == (y > 0.5)).all(1).mean())
    return float((z.argmax(1) == y).mean())
