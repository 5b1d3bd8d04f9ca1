"""The Prometheus text format, written by hand: checked line by line."""

from __future__ import annotations

import pytest

from imgclf.serve import Counter, Gauge, Histogram, ServerMetrics


def test_counter_and_gauge_lines_with_escaped_labels() -> None:
    c = Counter("x_total", "Things.", ("route",))
    c.inc('/a"b\\')
    c.inc('/a"b\\', amount=2)
    assert c.render() == ["# HELP x_total Things.", "# TYPE x_total counter", 'x_total{route="/a\\"b\\\\"} 3']
    g = Gauge("g", "A gauge.")
    g.set(0.25)
    g.set(0.5)
    assert g.render()[-1] == "g 0.5" and g.render()[1] == "# TYPE g gauge"
    with pytest.raises(ValueError, match="takes labels"):
        c.inc()


def test_histogram_buckets_are_cumulative_with_sum_and_count() -> None:
    h = Histogram("lat_seconds", "Latency.", (0.1, 1.0), ("route",))
    for v in (0.05, 0.5, 0.7, 3.0):
        h.observe(v, "/p")
    lines = h.render()
    assert lines[2:] == [
        'lat_seconds_bucket{route="/p",le="0.1"} 1',
        'lat_seconds_bucket{route="/p",le="1"} 3',
        'lat_seconds_bucket{route="/p",le="+Inf"} 4',
        'lat_seconds_sum{route="/p"} 4.25',
        'lat_seconds_count{route="/p"} 4',
    ]
    assert h.count("/p") == 4


def test_server_metrics_render_every_family_once() -> None:
    m = ServerMetrics()
    m.drift_p.set(0.3, "confidence_ks")
    text = m.render()
    assert text.endswith("\n")
    types = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert len(types) == len(set(types)) >= 12
    assert 'imgclf_drift_p_value{test="confidence_ks"} 0.3' in text
