"""A real `imgclf serve` process on loopback under hostile and concurrent use: concurrent explains with predict
load, trickling clients against the body timeout and the connection cap, and SIGTERM's readiness-first drain."""

from __future__ import annotations

import io
import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from tests.integration._helpers import cli_server

import imgclf
from imgclf import data as D

CLASSES = ("blue", "green", "red")


@pytest.fixture(scope="module")
def trained_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A test_cnn trained for a few seconds on synthetic colour shapes: real, non-flat Grad-CAM maps."""
    tmp = tmp_path_factory.mktemp("serve_hard")
    src = D.make_synthetic_dataset(tmp / "train", classes=CLASSES, per_class=12, size=32, seed=0)
    clf = imgclf.fit(src, model="test_cnn", epochs=2, img_size=32, batch_size=16, out=str(tmp), name="run", seed=0,
                     sets=["data.workers=0", "optim.lr=0.01", "optim.warmup_epochs=0"])  # fmt: skip
    return clf.result_.bundle_dir


def png(seed: int, size: tuple[int, int] = (40, 32)) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _files(blob: bytes) -> list:
    return [("file", ("x.png", blob, "image/png"))]


def _five_xx(metrics: str) -> list[str]:
    """5xx answers counted by the server, but /readyz's "not warmed up yet" while the test waited for it."""
    return [ln for ln in metrics.splitlines()
            if ln.startswith("imgclf_requests_total") and 'status="5' in ln and 'route="/readyz"' not in ln]


@pytest.mark.slow  # a minute here, mostly training and server start; the unit suite has a smaller twin
def test_concurrent_explains_with_predict_load_match_sequential_overlays(trained_bundle: Path) -> None:
    blobs = [png(i) for i in range(8)]
    with cli_server(trained_bundle) as (url, _):
        with httpx.Client(base_url=url, timeout=60) as http:
            expected = []
            for blob in blobs:  # one at a time: the reference
                res = http.post("/v1/explain", files=_files(blob))
                assert res.status_code == 200, res.text
                expected.append(res.json()["overlay"])
        assert len(set(expected)) == len(blobs)  # different images, different overlays
        explained: list[tuple[int, str]] = []
        errors: list[str] = []
        done = threading.Event()

        def explain_client(k: int) -> None:
            with httpx.Client(base_url=url, timeout=120) as http:
                for i in range(40):
                    j = (k * 3 + i) % len(blobs)
                    try:
                        res = http.post("/v1/explain", files=_files(blobs[j]))
                    except httpx.HTTPError as exc:
                        errors.append(f"explain: {type(exc).__name__} {exc}")
                        continue
                    if res.status_code != 200:
                        errors.append(f"explain: HTTP {res.status_code} {res.text[:200]}")
                    else:
                        explained.append((j, res.json()["overlay"]))

        predicted = [0]

        def predict_client(k: int) -> None:
            with httpx.Client(base_url=url, timeout=120) as http:
                i = 0
                while not done.is_set():
                    files = [("file", (f"{n}.png", blobs[(k + i + n) % 8], "image/png")) for n in range(3)]
                    try:
                        res = http.post("/v1/predict", files=files)
                    except httpx.HTTPError as exc:
                        errors.append(f"predict: {type(exc).__name__} {exc}")
                        continue
                    if res.status_code != 200:
                        errors.append(f"predict: HTTP {res.status_code} {res.text[:200]}")
                    predicted[0] += 1
                    i += 1

        explainers = [threading.Thread(target=explain_client, args=(k,)) for k in range(4)]
        predictors = [threading.Thread(target=predict_client, args=(k,)) for k in range(2)]
        for t in explainers + predictors:
            t.start()
        for t in explainers:
            t.join(300)
        done.set()
        for t in predictors:
            t.join(60)
        metrics = httpx.get(url + "/metrics", timeout=10).text
    print(f"\n160 concurrent explains with {predicted[0]} predict requests alongside")
    assert errors == [], errors[:5]
    assert len(explained) == 160 and predicted[0] > 0
    wrong = [j for j, overlay in explained if overlay != expected[j]]
    assert wrong == [], f"{len(wrong)} overlays differ from the sequential ones"
    assert 'imgclf_requests_total{route="/v1/explain",status="200"} 168' in metrics
    assert not _five_xx(metrics), _five_xx(metrics)


def _trickle(port: int, path: str = "/v1/predict") -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              "Content-Length: 1000\r\n\r\n{".encode())  # fmt: skip
    return s


def _status(s: socket.socket) -> int:
    head = s.recv(4096)
    return int(head.split()[1])


def test_trickling_clients_hit_the_body_timeout_and_the_connection_cap(trained_bundle: Path) -> None:
    with cli_server(trained_bundle, "--body-timeout", "2", "--max-connections", "2") as (url, proc):
        port = int(url.rsplit(":", 1)[1])
        slow = [_trickle(port) for _ in range(2)]
        time.sleep(0.3)
        try:
            third = _trickle(port)  # a third connection while two are held: refused, not queued forever
            assert _status(third) == 503
            third.close()
            start = time.monotonic()
            statuses = [_status(s) for s in slow]  # the held ones are cut off at the body timeout
            waited = time.monotonic() - start
        finally:
            for s in slow:
                s.close()
        assert statuses == [408, 408] and waited < 10
        with httpx.Client(base_url=url, timeout=30) as http:  # and the server is free again
            assert http.post("/v1/predict", files=_files(png(1))).status_code == 200
            metrics = http.get("/metrics").text
        assert 'imgclf_errors_total{reason="body_timeout"} 2' in metrics
        assert proc.poll() is None


def test_sigterm_turns_readiness_off_first_and_keeps_serving_during_the_drain_delay(trained_bundle: Path) -> None:
    with cli_server(trained_bundle, "--drain-delay", "3") as (url, proc):
        with httpx.Client(base_url=url, timeout=30) as http:
            assert http.get("/readyz").status_code == 200
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            ready = http.get("/readyz")
            assert ready.status_code == 503 and "shutting down" in ready.json()["error"]
            assert http.get("/healthz").status_code == 200
            assert http.post("/v1/predict", files=_files(png(2))).status_code == 200  # still answering
        assert proc.wait(60) in (0, -signal.SIGTERM)
        output = proc.stdout.read().decode()
    assert "Application shutdown complete" in output and "Traceback" not in output
