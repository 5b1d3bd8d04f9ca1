"""Load and fault tests against a real `imgclf serve` process on loopback (bounded in size and time).

- 2,000 requests at concurrency 16: zero errors, p50 / p99 latency printed.
- A sweep of malformed uploads: only 4xx answers, while health checks keep answering, during and after.
- SIGTERM in the middle of load: every request the server accepted is answered and logged, none is lost.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import signal
import socket
import struct
import threading
import time
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image
from tests.integration._helpers import cli_server

from imgclf.bundle import BundleMeta, save_bundle
from imgclf.config import DataConfig
from imgclf.models import create_model


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained test_cnn bundle: load behaviour does not depend on what the model learned."""
    torch.manual_seed(0)
    prep = DataConfig(input_size=32, resize_size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    meta = BundleMeta("test_cnn", ("a", "b", "c"), prep, temperature=1.3)
    return save_bundle(tmp_path_factory.mktemp("load") / "bundle", create_model("test_cnn", 3), meta)


def png(seed: int, size: tuple[int, int] = (32, 32)) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A few hundred bytes whose PNG header claims ``width x height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def test_2000_requests_at_concurrency_16_without_errors(bundle: Path, tmp_path: Path) -> None:
    blobs = [png(i) for i in range(32)]
    log = tmp_path / "audit.jsonl"
    total, workers = 2000, 16
    with cli_server(bundle, "--log", str(log), "--max-batch", "16", "--max-wait-ms", "2") as (url, _):

        async def run() -> tuple[list[float], list[str], float]:
            latencies: list[float] = []
            errors: list[str] = []
            counter = iter(range(total))
            limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
            async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:

                async def worker() -> None:
                    for i in counter:
                        blob = blobs[i % len(blobs)]
                        start = time.perf_counter()
                        try:
                            if i % 2:
                                res = await http.post("/v1/predict", files=[("file", ("x.png", blob, "image/png"))])
                            else:
                                res = await http.post("/v1/predict", json={"images": [base64.b64encode(blob).decode()]})
                        except httpx.HTTPError as exc:
                            errors.append(f"{i}: {type(exc).__name__} {exc}")
                            continue
                        latencies.append(time.perf_counter() - start)
                        if res.status_code != 200:
                            errors.append(f"{i}: HTTP {res.status_code} {res.text[:200]}")

                began = time.perf_counter()
                await asyncio.gather(*(worker() for _ in range(workers)))
                return latencies, errors, time.perf_counter() - began

        latencies, errors, seconds = asyncio.run(run())
        metrics = httpx.get(url + "/metrics", timeout=10).text
    print(f"\n{total} requests, concurrency {workers}: {total / seconds:.0f} req/s, "
          f"p50 {percentile(latencies, 50) * 1000:.1f} ms, p99 {percentile(latencies, 99) * 1000:.1f} ms")  # fmt: skip
    assert errors == [], errors[:5]
    assert len(latencies) == total
    assert 'imgclf_requests_total{route="/v1/predict",status="200"} 2000' in metrics
    batch_count = float(next(ln.split()[-1] for ln in metrics.splitlines() if ln.startswith("imgclf_batch_size_count")))
    batched = float(next(ln.split()[-1] for ln in metrics.splitlines() if ln.startswith("imgclf_batch_size_sum")))
    assert batched == total  # every image went through exactly one inference batch
    assert batch_count < total, batch_count  # 16 concurrent clients: requests shared batches (1239 on 2 busy cores)
    assert len(log.read_text().splitlines()) == total


def _raw_oversized(url: str) -> int:
    """Headers declaring 50 MB, then a trickle: the 413 must come back without the body being read."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as s:
        s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 50000000\r\n\r\n" + b"{" * 4096)  # fmt: skip
        head = s.recv(4096)
    return int(head.split()[1])


def test_malformed_uploads_get_only_4xx_and_health_checks_keep_answering(bundle: Path) -> None:
    good = png(1)
    big_stream = (b"x" * 65536 for _ in range(40))  # 2.5 MB, chunked
    cases: dict[str, dict] = {
        "truncated": {"files": [("file", ("t.png", good[: len(good) // 3], "image/png"))]},
        "zero-byte": {"files": [("file", ("z.png", b"", "image/png"))]},
        "wrong content type": {"content": good, "headers": {"content-type": "image/png"}},
        "text body": {"content": b"hello", "headers": {"content-type": "text/plain"}},
        "text file as image": {"files": [("file", ("t.png", b"this is text" * 50, "image/png"))]},
        "huge dimensions": {"files": [("file", ("h.png", png_claiming(40_000, 40_000), "image/png"))]},
        "over the pixel limit": {"files": [("file", ("p.png", png_claiming(3_000, 3_000), "image/png"))]},
        "corrupt pixels": {"files": [("file", ("c.png", good[:60] + bytes(b ^ 0xFF for b in good[60:-20])
                                               + good[-20:], "image/png"))]},  # fmt: skip
        "oversized body": {"content": b"x" * 3_000_000, "headers": {"content-type": "application/json"}},
        "oversized stream": {"content": big_stream, "headers": {"content-type": "application/json"}},
        "bad json": {"content": b'{"images": [', "headers": {"content-type": "application/json"}},
        "bad base64": {"json": {"images": ["%%%"]}},
        "no images": {"json": {"images": []}},
        "broken multipart": {"content": b"--xx\r\nnonsense", "headers": {"content-type": "multipart/form-data; b"
                                                                                      "oundary=xx"}},  # fmt: skip
        "too many images": {"files": [("file", (f"{i}.png", good, "image/png")) for i in range(40)]},
    }
    with cli_server(bundle, "--max-body-mb", "1", "--max-megapixels", "1") as (url, proc):
        health: list[int] = []
        stop = threading.Event()

        def probe() -> None:
            with httpx.Client(base_url=url, timeout=10) as http:
                while not stop.is_set():
                    health.append(http.get("/healthz").status_code)
                    health.append(http.get("/readyz").status_code)
                    time.sleep(0.02)

        prober = threading.Thread(target=probe)
        prober.start()
        try:
            def send(name: str) -> tuple[str, int]:
                with httpx.Client(base_url=url, timeout=30) as http:
                    return name, http.post("/v1/predict", **cases[name]).status_code

            with ThreadPoolExecutor(8) as pool:
                statuses = list(pool.map(send, [n for n in cases for _ in range(1 if "stream" in n else 3)]))
            raw = [_raw_oversized(url) for _ in range(3)]
            during = len(health)
        finally:
            stop.set()
            prober.join(30)
        assert all(400 <= code < 500 for _, code in statuses), statuses
        assert dict(statuses)["oversized body"] == 413 and dict(statuses)["huge dimensions"] == 413
        assert dict(statuses)["text file as image"] == 415 and dict(statuses)["truncated"] == 422
        assert raw == [413, 413, 413]
        assert during > 0 and set(health) == {200}
        with httpx.Client(base_url=url, timeout=30) as http:  # and after: still healthy and still predicting
            assert http.get("/healthz").status_code == 200 and http.get("/readyz").status_code == 200
            assert http.post("/v1/predict", files=[("file", ("g.png", good, "image/png"))]).status_code == 200
            metrics = http.get("/metrics").text
        assert proc.poll() is None
        # No 5xx was ever answered, except /readyz's "not warmed up yet" 503 while the test waits for readiness.
        five = [line for line in metrics.splitlines() if 'status="5' in line and 'route="/readyz"' not in line]
        assert not five, five


def test_sigterm_during_load_loses_no_accepted_request(bundle: Path, tmp_path: Path) -> None:
    blobs = [png(i) for i in range(16)]
    log = tmp_path / "audit.jsonl"
    with cli_server(bundle, "--log", str(log)) as (url, proc):
        signalled = {"at": None}

        async def run() -> list[tuple[str, str, float]]:
            outcomes: list[tuple[str, str, float]] = []  # (request id, outcome, time received)
            done = 0
            async with httpx.AsyncClient(base_url=url, timeout=60) as http:

                async def worker(k: int) -> None:
                    nonlocal done
                    for i in range(10_000):
                        rid = uuid.uuid4().hex
                        try:
                            files = [("file", ("x.png", blobs[(k + i) % 16], "image/png"))]
                            res = await http.post("/v1/predict", headers={"X-Request-ID": rid}, files=files)
                        except httpx.TransportError as exc:
                            outcomes.append((rid, type(exc).__name__, time.monotonic()))
                            return  # the server is gone or going: this request was never accepted
                        outcomes.append((rid, str(res.status_code), time.monotonic()))
                        done += 1
                        if done == 150 and signalled["at"] is None:
                            signalled["at"] = time.monotonic()
                            proc.send_signal(signal.SIGTERM)

                await asyncio.gather(*(worker(k) for k in range(16)))
            return outcomes

        outcomes = asyncio.run(run())
        # Uvicorn re-raises SIGTERM once it has shut down cleanly, so the exit status says "terminated".
        assert proc.wait(60) in (0, -signal.SIGTERM)
        output = proc.stdout.read().decode()
    statuses = {o for _, o, _ in outcomes}
    after = sum(o == "200" and t > signalled["at"] for _, o, t in outcomes)
    away = sum(o != "200" for _, o, _ in outcomes)
    print(f"\nSIGTERM after 150 answers: {after} accepted requests answered after it, {away} turned away")
    ok = {rid for rid, o, _ in outcomes if o == "200"}
    assert statuses - {"200"} <= {"ConnectError", "RemoteProtocolError", "ReadError"}, statuses
    logged = {json.loads(line)["request_id"] for line in log.read_text().splitlines()}
    assert logged == ok  # every prediction the server made was delivered, every delivered one was logged
    assert after > 0  # the requests in flight at the signal were finished, not dropped
    assert "Application shutdown complete" in output and "Finished server process" in output
    assert "Traceback" not in output and "Cancel" not in output
