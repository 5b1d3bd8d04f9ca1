"""A 5-minute soak of a real `imgclf serve` process on 127.0.0.1: predict, explain and malformed uploads mixed at
concurrency 16. No 5xx other than 503/504 the server itself counted, resident memory within 10% of its level after
warm-up, and every accepted prediction in the audit log.

Slow and marked ``soak`` (``-m soak`` runs it alone, ``-m "not soak"`` skips it); ``IMGCLF_SOAK_S`` shortens or
lengthens the measured part (default 300 s, after a 30 s warm-up of the same mix).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import struct
import time
import uuid
import zlib
from collections import Counter
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

pytestmark = [pytest.mark.slow, pytest.mark.soak]

CONCURRENCY = 16
WARMUP_S = 30.0
SOAK_S = float(os.environ.get("IMGCLF_SOAK_S", "300"))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    prep = DataConfig(input_size=32, resize_size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    meta = BundleMeta("test_cnn", ("a", "b", "c"), prep, temperature=1.3)
    return save_bundle(tmp_path_factory.mktemp("soak") / "bundle", create_model("test_cnn", 3), meta)


def encoded(seed: int, fmt: str = "PNG", size: tuple[int, int] = (48, 40)) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


GOOD = [encoded(i, fmt) for i, fmt in enumerate(["PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF"] * 3)]
MALFORMED: list[dict] = [
    {"files": [("file", ("t.png", GOOD[0][: len(GOOD[0]) // 3], "image/png"))]},
    {"files": [("file", ("z.png", b"", "image/png"))]},
    {"files": [("file", ("text.png", b"not an image at all " * 20, "image/png"))]},
    {"files": [("file", ("x.dds", encoded(1, "DDS"), "image/png"))]},
    {"files": [("file", ("huge.png", png_claiming(30_000, 30_000), "image/png"))]},
    {"files": [("file", (f"{i}.png", png_claiming(6000, 6000), "image/png")) for i in range(4)]},  # budget
    {"content": GOOD[0], "headers": {"content-type": "image/png"}},
    {"content": b'{"images": [', "headers": {"content-type": "application/json"}},
    {"json": {"images": ["%%%"]}},
    {"json": {"images": [""] * 40}},
    {"files": [("file", ("g.png", GOOD[1], "image/png"))], "headers": {"X-Timeout-Ms": "nan"}},
    {"files": [("file", ("g.png", GOOD[1], "image/png"))], "headers": {"Origin": "http://evil.example"}},
]


def test_five_minute_soak(bundle: Path, tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    with cli_server(bundle, "--log", str(log), "--log-max-mb", "1000") as (url, proc):
        statuses: Counter[str] = Counter()
        accepted: dict[str, int] = {}  # request id -> images answered
        unexpected: list[str] = []
        samples: list[tuple[float, int]] = []

        async def worker(k: int, http: httpx.AsyncClient, until: float) -> None:
            i = 0
            while time.monotonic() < until:
                i += 1
                kind = (k * 7 + i) % 20
                rid = uuid.uuid4().hex
                try:
                    if kind < 12:  # predict: 1-4 images, multipart or JSON
                        blobs = [GOOD[(k + i + n) % len(GOOD)] for n in range(1 + i % 4)]
                        if i % 2:
                            files = [("file", (f"{n}.img", b, "application/octet-stream")) for n, b in enumerate(blobs)]
                            res = await http.post("/v1/predict", files=files, headers={"X-Request-ID": rid})
                        else:
                            body = {"images": [base64.b64encode(b).decode() for b in blobs]}
                            res = await http.post("/v1/predict", json=body, headers={"X-Request-ID": rid})
                        route = "predict"
                        if res.status_code == 200:
                            accepted[rid] = len(res.json()["predictions"])
                    elif kind < 15:
                        res = await http.post("/v1/explain", files=[("file", ("e.png", GOOD[i % len(GOOD)]))])
                        route = "explain"
                        if res.status_code == 200 and not res.json()["overlay"].startswith("data:image/png"):
                            unexpected.append("explain answered without an overlay")
                    else:
                        res = await http.post("/v1/predict", **MALFORMED[(k + i) % len(MALFORMED)])
                        route = "malformed"
                        if not 400 <= res.status_code < 500:
                            unexpected.append(f"malformed case {(k + i) % len(MALFORMED)}: HTTP {res.status_code}")
                except httpx.HTTPError as exc:
                    unexpected.append(f"kind {kind}, malformed case {(k + i) % len(MALFORMED)}: {exc!r}")
                    continue
                statuses[f"{route} {res.status_code}"] += 1
                if res.status_code >= 500 and res.status_code not in (503, 504):
                    unexpected.append(f"{route}: HTTP {res.status_code} {res.text[:200]}")

        async def sampler(until: float) -> None:
            while time.monotonic() < until:
                samples.append((time.monotonic(), rss_bytes(proc.pid)))
                await asyncio.sleep(2.0)

        async def run() -> float:
            # Idle connections are dropped by the client (2 s) before uvicorn's keep-alive timeout (5 s) closes them,
            # so a request is never sent on a connection the server is closing at that moment.
            limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY,
                                  keepalive_expiry=2.0)  # fmt: skip
            async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
                warm_until = time.monotonic() + WARMUP_S
                await asyncio.gather(*(worker(k, http, warm_until) for k in range(CONCURRENCY)))
                baseline = float(np.median([rss_bytes(proc.pid) for _ in range(3)]))
                until = time.monotonic() + SOAK_S
                await asyncio.gather(sampler(until), *(worker(k, http, until) for k in range(CONCURRENCY)))
                return baseline

        began = time.monotonic()
        baseline = asyncio.run(run())
        seconds = time.monotonic() - began
        metrics = httpx.get(url + "/metrics", timeout=30).text
        final_rss = rss_bytes(proc.pid)
    peak = max(r for _, r in samples)
    total = sum(statuses.values())
    print(f"\nsoak: {total} requests in {seconds:.0f} s ({total / seconds:.0f}/s) at concurrency {CONCURRENCY}; "
          f"RSS after warm-up {baseline / 2**20:.0f} MiB, peak {peak / 2**20:.0f} MiB, final "
          f"{final_rss / 2**20:.0f} MiB; {dict(sorted(statuses.items()))}")  # fmt: skip
    assert unexpected == [], unexpected[:5]
    assert statuses["predict 200"] > 100 and statuses["explain 200"] > 10 and total > 500
    # Any 503/504 the clients saw, the server counted (per route and status) on /metrics.
    for route in ("predict", "explain"):
        for code in (503, 504):
            seen = statuses[f"{route} {code}"]
            if seen:
                assert f'imgclf_requests_total{{route="/v1/{route}",status="{code}"}}' in metrics
    assert not [ln for ln in metrics.splitlines() if 'status="500"' in ln]
    assert peak <= 1.10 * baseline, f"RSS grew from {baseline / 2**20:.0f} to {peak / 2**20:.0f} MiB"
    logged = Counter(json.loads(line)["request_id"] for line in log.read_text().splitlines())
    assert dict(logged) == accepted  # every accepted prediction logged, once per image, nothing else
