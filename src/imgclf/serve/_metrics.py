"""Prometheus text exposition (format 0.0.4), written here: counters, gauges and histograms with labels."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)

LabelValues = tuple[str, ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v)) if not float(v).is_integer() else str(int(v))


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(str(v))}"' for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        self.name, self.help, self.label_names = name, help_text, tuple(labels)
        self._lock = threading.Lock()

    def _key(self, labels: Sequence[str]) -> LabelValues:
        if len(labels) != len(self.label_names):
            raise ValueError(f"{self.name} takes labels {self.label_names}, got {tuple(labels)}")
        return tuple(str(v) for v in labels)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]


class Counter(_Metric):
    """A monotonically increasing count per label combination."""

    kind = "counter"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labels)
        self._values: dict[LabelValues, float] = {} if labels else {(): 0.0}

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, *labels: str) -> float:
        return self._values.get(self._key(labels), 0.0)

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return self.header() + [f"{self.name}{_labels(self.label_names, k)} {_number(v)}" for k, v in items]


class Gauge(Counter):
    """A value that goes up and down (set, not only incremented)."""

    kind = "gauge"

    def set(self, value: float, *labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = float(value)


class Histogram(_Metric):
    """Observations counted into cumulative ``le`` buckets, with ``_sum`` and ``_count``."""

    kind = "histogram"

    def __init__(self, name: str, help_text: str, buckets: Sequence[float], labels: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labels)
        self.buckets = tuple(sorted(buckets))
        self._data: dict[LabelValues, list[float]] = {}  # per labels: bucket counts..., +Inf count, sum

    def observe(self, value: float, *labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            row = self._data.setdefault(key, [0.0] * (len(self.buckets) + 2))
            for i, upper in enumerate(self.buckets):
                if value <= upper:
                    row[i] += 1
            row[-2] += 1
            row[-1] += value

    def count(self, *labels: str) -> int:
        row = self._data.get(self._key(labels))
        return int(row[-2]) if row else 0

    def render(self) -> list[str]:
        lines = self.header()
        with self._lock:
            items = sorted((k, list(v)) for k, v in self._data.items())
        for key, row in items:
            bounds = [*(_number(b) for b in self.buckets), "+Inf"]
            for upper, n in zip(bounds, row):
                le = 'le="' + upper + '"'
                lines.append(f"{self.name}_bucket{_labels(self.label_names, key, le)} {_number(n)}")
            lines.append(f"{self.name}_sum{_labels(self.label_names, key)} {_number(row[-1])}")
            lines.append(f"{self.name}_count{_labels(self.label_names, key)} {_number(row[-2])}")
        return lines


class ServerMetrics:
    """Every metric the server exposes on ``/metrics``.

    >>> m = ServerMetrics(); m.requests.inc("/v1/predict", "200"); "imgclf_requests_total" in m.render()
    True
    """

    def __init__(self) -> None:
        self.requests = Counter("imgclf_requests_total", "HTTP requests by route and status code.",
                                ("route", "status"))  # fmt: skip
        self.latency = Histogram("imgclf_request_latency_seconds", "Request latency in seconds by route.",
                                 LATENCY_BUCKETS, ("route",))  # fmt: skip
        self.images = Counter("imgclf_images_total", "Images predicted.")
        self.batch_size = Histogram("imgclf_batch_size", "Images per inference batch.", BATCH_BUCKETS)
        self.inference = Histogram("imgclf_inference_seconds", "Model time per inference batch in seconds.",
                                   LATENCY_BUCKETS)  # fmt: skip
        self.rejections = Counter("imgclf_rejections_total", "Images answered as unknown by the rejection threshold.")
        self.errors = Counter("imgclf_errors_total", "Requests refused or failed, by reason.", ("reason",))
        self.audit_errors = Counter("imgclf_audit_log_errors_total", "Audit-log records that could not be written "
                                    "(the predictions were still answered) and failed rotations.")  # fmt: skip
        self.queue_depth = Gauge("imgclf_queue_depth", "Images waiting for the inference worker.")
        self.explanations = Counter("imgclf_explanations_total", "Grad-CAM overlays answered by /v1/explain.")
        self.explain_seconds = Histogram("imgclf_explain_seconds", "Model time per explanation in seconds.",
                                         LATENCY_BUCKETS)  # fmt: skip
        self.explain_queue_depth = Gauge("imgclf_explain_queue_depth", "Images waiting for the explain worker.")
        self.ready = Gauge("imgclf_ready", "1 when the model is loaded and warmed up.")
        self.model_info = Gauge("imgclf_model_info", "The served model (value 1).", ("version", "architecture"))
        self.drift_p = Gauge("imgclf_drift_p_value", "Bonferroni-adjusted p-value of the latest drift window.",
                             ("test",))  # fmt: skip
        self.drift_detected = Gauge("imgclf_drift_detected", "1 when the latest drift window was judged drifted.")
        self.drift_windows = Counter("imgclf_drift_windows_total", "Drift windows tested.")
        self.drift_window_fill = Gauge("imgclf_drift_window_fill", "Predictions collected for the next window.")

    def all(self) -> list[_Metric]:
        return [v for v in vars(self).values() if isinstance(v, _Metric)]

    def render(self) -> str:
        return "\n".join(line for metric in self.all() for line in metric.render()) + "\n"
