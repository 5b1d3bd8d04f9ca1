"""Hostile and careless clients against the in-process app: limits checked before decoding, the format
allow-list, body timeouts, disconnects, Host and Origin checks, auth and timeout headers, worker death, draining,
and /v1/explain behind its own queue."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import threading
import weakref
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import imgclf
from imgclf.serve import Predictor, ServeSettings, build_app, create_app

from .conftest import client_for, png_bytes
from .test_decode import huge_png_header


def _files(*blobs: bytes) -> list:
    return [("file", (f"img{i}.png", b, "image/png")) for i, b in enumerate(blobs)]


def _metric(text: str, key: str) -> float:
    lines = [ln for ln in text.splitlines() if ln.startswith(key + " ")]
    return float(lines[0].split()[-1]) if lines else 0.0


def _encoded(fmt: str, size: tuple[int, int] = (24, 20)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture(scope="module")
def client(base_bundle: Path):
    settings = ServeSettings(max_images=4, max_pixels=250_000, max_request_pixels=500_000, token="s3cret")
    with client_for(create_app(base_bundle, settings)) as c:
        c.headers["Authorization"] = "Bearer s3cret"
        yield c


# -- limits before decoding ------------------------------------------------------------------------------------
def test_request_pixel_budget_refuses_before_decoding(client) -> None:
    # Three 400x400 headers fit the per-image limit and the budget; a fourth passes the budget (640,000 > 500,000).
    # The pixel data of these files is a few bytes: decoding them would say "truncated", so a 413 here proves
    # that nothing was decoded.
    blobs = [huge_png_header(400, 400)] * 4
    res = client.post("/v1/predict", files=_files(*blobs))
    assert res.status_code == 413, res.text
    assert res.json()["code"] == "too_many_pixels" and "640,000 pixels together" in res.json()["detail"]
    assert client.post("/v1/predict", files=_files(*blobs[:3])).json()["code"] == "truncated_image"


def test_default_budget_refuses_32_images_of_40_megapixels_at_once(base_bundle: Path) -> None:
    settings = ServeSettings()
    assert settings.max_request_pixels == 100_000_000  # the documented default
    with client_for(create_app(base_bundle, settings)) as c:
        res = c.post("/v1/predict", files=_files(*[huge_png_header(8000, 5000)] * 32))
    assert res.status_code == 413 and "1,280,000,000 pixels together" in res.json()["detail"]


def test_json_images_are_counted_before_any_is_decoded(client) -> None:
    # Five entries for a limit of four; the last is not even base64. Counting first answers 413, not 422.
    res = client.post("/v1/predict", json={"images": [""] * 4 + ["%%% not base64 %%%"]})
    assert res.status_code == 413 and res.json()["code"] == "too_many_images"
    res = client.post("/v1/predict", json={"images": [""] * 200_000})
    assert res.status_code == 413 and "200000 images" in res.json()["detail"]


def test_too_many_multipart_files_get_413(client) -> None:
    res = client.post("/v1/predict", files=_files(*[png_bytes(i) for i in range(6)]))
    assert res.status_code == 413 and res.json()["code"] == "too_many_images"


@pytest.mark.parametrize("fmt", ["DDS", "TGA", "PPM", "ICO", "PCX", "SGI"])
def test_formats_outside_the_allow_list_get_415_unparsed(client, fmt: str) -> None:
    res = client.post("/v1/predict", files=_files(_encoded(fmt)))
    assert res.status_code == 415, res.text
    assert res.json()["code"] == "unsupported_format" and "not accepted" in res.json()["detail"]


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"])
def test_every_default_format_is_served(client, fmt: str) -> None:
    res = client.post("/v1/predict", files=_files(_encoded(fmt)))
    assert res.status_code == 200, res.text
    assert (res.json()["predictions"][0]["width"], res.json()["predictions"][0]["height"]) == (24, 20)


def test_the_format_allow_list_is_configurable(base_bundle: Path) -> None:
    with client_for(create_app(base_bundle, ServeSettings(formats=("png",)))) as c:
        assert c.post("/v1/predict", files=_files(_encoded("PNG"))).status_code == 200
        res = c.post("/v1/predict", files=_files(_encoded("JPEG")))
        assert res.status_code == 415 and "format JPEG is not accepted (accepted: PNG)" in res.json()["detail"]
        assert c.get("/v1/model").json()["limits"]["formats"] == ["PNG"]


class WatchedPredictor(Predictor):
    """Keeps weak references to every full-resolution image it preprocesses; reports which are still alive when
    their batch runs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refs: list[weakref.ref] = []
        self.alive_at_batch: list[int] = []

    def preprocess(self, image: Image.Image) -> Any:
        self.refs.append(weakref.ref(image))
        return super().preprocess(image)

    def __call__(self, tensors: Any) -> Any:
        self.alive_at_batch.append(sum(r() is not None for r in self.refs))
        return super().__call__(tensors)


def test_decoded_images_are_dropped_before_their_batch_runs(base_bundle: Path) -> None:
    pred = WatchedPredictor(imgclf.load(base_bundle))
    with client_for(build_app(pred, ServeSettings())) as c:
        pred.refs.clear()
        pred.alive_at_batch.clear()
        res = c.post("/v1/predict", files=_files(*[png_bytes(i, (300, 200)) for i in range(4)]))
    assert res.status_code == 200 and len(pred.refs) == 4
    assert pred.alive_at_batch and set(pred.alive_at_batch) == {0}


# -- slow bodies and vanished clients (the raw ASGI interface, no lifespan needed for these paths) ------------
def _scope(path: str = "/v1/predict", headers: list[tuple[bytes, bytes]] | None = None) -> dict:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": headers or [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"),
                                   (b"content-length", b"100")],
            "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000)}  # fmt: skip


async def _call(app: Any, receive: Any, scope: dict | None = None) -> list[dict]:
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    await asyncio.wait_for(app(scope or _scope(), receive, send), timeout=20)
    return sent


def test_a_trickled_body_gets_408_at_the_body_timeout(base_bundle: Path) -> None:
    app = create_app(base_bundle, ServeSettings(body_timeout_s=0.5))

    async def trickle() -> dict:
        await asyncio.sleep(0.2)
        return {"type": "http.request", "body": b"{", "more_body": True}

    sent = asyncio.run(_call(app, trickle))
    assert sent[0]["status"] == 408 and json.loads(sent[1]["body"])["code"] == "body_timeout"
    metrics = app.state.imgclf.metrics
    assert metrics.requests.value("/v1/predict", "408") == 1 and metrics.errors.value("body_timeout") == 1


def test_a_client_gone_mid_body_is_no_server_error(base_bundle: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(base_bundle, ServeSettings())
    messages = iter([{"type": "http.request", "body": b'{"images": ["iVBO', "more_body": True},
                     {"type": "http.disconnect"}])  # fmt: skip

    async def receive() -> dict:
        return next(messages)

    with caplog.at_level(logging.INFO):
        sent = asyncio.run(_call(app, receive))  # raises on the old code (ClientDisconnect escapes the app)
    assert sent == []  # nobody left to answer
    metrics = app.state.imgclf.metrics
    assert metrics.requests.value("/v1/predict", "500") == 0 and metrics.requests.value("/v1/predict", "499") == 1
    assert metrics.errors.value("client_disconnect") == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


# -- Host, Origin, CORS -----------------------------------------------------------------------------------------
def test_unknown_host_names_are_refused_but_health_checks_answer(base_bundle: Path) -> None:
    from fastapi.testclient import TestClient

    app = create_app(base_bundle, ServeSettings(host="10.1.2.3"))
    with TestClient(app, base_url="http://attacker.example:8000") as c:  # DNS rebinding: the victim's browser
        res = c.get("/v1/model")
        assert res.status_code == 400 and res.json()["code"] == "bad_host" and "classes" not in res.text
        assert c.post("/v1/predict", files=_files(png_bytes(1))).status_code == 400
        assert c.get("/healthz").status_code == 200
        for host in ("127.0.0.1:8000", "localhost", "LOCALHOST:1", "[::1]:8000", "10.1.2.3:8000"):
            assert c.get("/v1/model", headers={"host": host}).status_code == 200, host
        assert c.get("/v1/model", headers={"host": "127.0.0.1.attacker.example"}).status_code == 400
    with client_for(create_app(base_bundle, ServeSettings(allowed_hosts=("models.internal",)))) as c:
        assert c.get("/v1/model", headers={"host": "models.internal:80"}).status_code == 200
        assert c.get("/v1/model", headers={"host": "other.internal"}).status_code == 400


def test_cross_origin_posts_are_refused_without_cors(client) -> None:
    before = _metric(client.get("/metrics").text, "imgclf_images_total")
    res = client.post("/v1/predict", files=_files(png_bytes(1)), headers={"Origin": "http://attacker.example"})
    assert res.status_code == 403 and res.json()["code"] == "cross_origin"
    assert "access-control-allow-origin" not in res.headers
    assert client.post("/v1/predict", files=_files(png_bytes(1)), headers={"Origin": "null"}).status_code == 403
    assert _metric(client.get("/metrics").text, "imgclf_images_total") == before  # nothing was predicted
    same = client.post("/v1/predict", files=_files(png_bytes(1)), headers={"Origin": "http://127.0.0.1"})
    assert same.status_code == 200  # the server's own page


def test_configured_cors_origins_get_cors_headers_and_preflight(base_bundle: Path) -> None:
    with client_for(create_app(base_bundle, ServeSettings(cors_origins=("https://app.example",)))) as c:
        pre = c.options("/v1/predict", headers={"Origin": "https://app.example",
                                                "Access-Control-Request-Method": "POST"})  # fmt: skip
        assert pre.status_code == 204 and "POST" in pre.headers["access-control-allow-methods"]
        assert "authorization" in pre.headers["access-control-allow-headers"]
        res = c.post("/v1/predict", files=_files(png_bytes(1)), headers={"Origin": "https://app.example"})
        assert res.status_code == 200 and res.headers["access-control-allow-origin"] == "https://app.example"
        other = c.post("/v1/predict", files=_files(png_bytes(1)), headers={"Origin": "https://b.example"})
        assert other.status_code == 403


# -- headers: auth scheme case, timeouts --------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_the_bearer_scheme_is_case_insensitive(client, scheme: str) -> None:
    res = client.get("/v1/model", headers={"Authorization": f"{scheme} s3cret"})
    assert res.status_code == 200
    assert client.get("/v1/model", headers={"Authorization": f"{scheme} S3CRET"}).status_code == 401
    assert client.get("/v1/model", headers={"Authorization": "Basic s3cret"}).status_code == 401


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "-5", "0", "soon"])
def test_timeout_header_must_be_a_positive_finite_number(client, value: str) -> None:
    res = client.post("/v1/predict", files=_files(png_bytes(1)), headers={"X-Timeout-Ms": value})
    assert res.status_code == 422 and res.json()["code"] == "bad_timeout", (value, res.text)
    assert client.post("/v1/predict", files=_files(png_bytes(1)), headers={"X-Timeout-Ms": "5000"}).status_code == 200


# -- worker death and draining ----------------------------------------------------------------------------------
class Fatal(BaseException):
    """Something that kills a thread (not an ordinary error a batch could report)."""


class DyingPredictor(Predictor):
    def __call__(self, tensors: Any) -> Any:
        raise Fatal("the inference thread is gone")


class HoldLog(logging.Handler):
    """Blocks whoever logs until released: keeps a dying worker's thread alive while the test looks."""

    def __init__(self) -> None:
        super().__init__()
        self.go = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.go.wait(10)


def test_a_dead_inference_worker_shows_in_health_and_refuses_fast(base_bundle: Path) -> None:
    pred = DyingPredictor(imgclf.load(base_bundle))
    pred.warmup = lambda: None  # type: ignore[method-assign]
    hold, logger = HoldLog(), logging.getLogger("imgclf.serve")
    logger.addHandler(hold)  # the worker's thread is still alive (logging its death) while it is probed
    try:
        with client_for(build_app(pred, ServeSettings(timeout_s=60))) as c:
            first = c.post("/v1/predict", files=_files(png_bytes(1)))  # the request whose batch killed the worker
            assert first.status_code == 503 and first.json()["code"] == "worker_dead"
            health = c.get("/healthz")
            assert health.status_code == 503 and "inference worker" in health.json()["error"]
            assert c.get("/readyz").status_code == 503  # was 200 in that window: readiness asked the thread only
            hold.go.set()
            later = c.post("/v1/predict", files=_files(png_bytes(2)))
            assert later.status_code == 503 and later.json()["code"] == "worker_dead"
            assert c.get("/readyz").status_code == 503
    finally:
        hold.go.set()
        logger.removeHandler(hold)


def test_draining_turns_readiness_off_while_requests_are_still_served(client) -> None:
    state = client.app.state.imgclf
    try:
        state.begin_drain()
        res = client.get("/readyz")
        assert res.status_code == 503 and "shutting down" in res.json()["error"]
        assert client.get("/healthz").status_code == 200
        assert client.post("/v1/predict", files=_files(png_bytes(1))).status_code == 200
        assert "imgclf_ready 0" in client.get("/metrics").text
    finally:
        state.draining.clear()


# -- /v1/explain through its own queue --------------------------------------------------------------------------
def test_explain_is_counted_under_its_own_route(client) -> None:
    res = client.post("/v1/explain", files=_files(png_bytes(1)))
    assert res.status_code == 200
    text = client.get("/metrics").text
    assert _metric(text, 'imgclf_requests_total{route="/v1/explain",status="200"}') >= 1
    assert _metric(text, "imgclf_explanations_total") >= 1 and "imgclf_explain_queue_depth" in text


def test_explain_queue_full_gives_429_and_deadline_504(base_bundle: Path) -> None:
    app = build_app(Predictor(imgclf.load(base_bundle)), ServeSettings(explain_queue_size=1))
    with client_for(app) as c:
        explainer = app.state.imgclf.explainer
        gate, entered = threading.Event(), threading.Event()
        real = explainer.overlay_png

        def held(x: Any) -> bytes:
            entered.set()
            gate.wait(30)
            return real(x)

        explainer.overlay_png = held
        results: dict[str, Any] = {}
        threads = [threading.Thread(target=lambda k=k: results.setdefault(k, c.post(
            "/v1/explain", files=_files(png_bytes(k))))) for k in range(2)]  # fmt: skip
        threads[0].start()
        assert entered.wait(10)  # the worker holds the first; the second fills the one queue slot
        threads[1].start()
        batcher = app.state.imgclf.explain_batcher
        for _ in range(1000):
            if batcher.queued == 1:
                break
            threading.Event().wait(0.01)
        busy = c.post("/v1/explain", files=_files(png_bytes(5)))
        assert busy.status_code == 429 and int(busy.headers["retry-after"]) >= 1
        assert c.post("/v1/predict", files=_files(png_bytes(5))).status_code == 200  # predict is not blocked
        gate.set()
        for t in threads:
            t.join(30)
        assert results[0].status_code == 200 and results[1].status_code == 200
        explainer.overlay_png = lambda x: (gate.clear(), gate.wait(2), real(x))[-1]
        late = c.post("/v1/explain", files=_files(png_bytes(6)), headers={"X-Timeout-Ms": "300"})
        assert late.status_code == 504 and late.json()["code"] == "deadline"


def test_explain_overlays_match_a_private_sequential_run_under_concurrent_load(base_bundle: Path) -> None:
    blobs = [png_bytes(i) for i in range(4)]
    with client_for(create_app(base_bundle, ServeSettings())) as c:
        expected = [c.post("/v1/explain", files=_files(b)).json()["overlay"] for b in blobs]
        got: list[tuple[int, int, str]] = []
        errors: list[str] = []

        def explain_client(k: int) -> None:
            for i in range(10):
                res = c.post("/v1/explain", files=_files(blobs[(k + i) % 4]))
                if res.status_code != 200:
                    errors.append(res.text)
                else:
                    got.append(((k + i) % 4, res.status_code, res.json()["overlay"]))

        def predict_client() -> None:
            for i in range(20):
                if c.post("/v1/predict", files=_files(blobs[i % 4], blobs[(i + 1) % 4])).status_code != 200:
                    errors.append("predict failed")

        threads = [threading.Thread(target=explain_client, args=(k,)) for k in range(4)]
        threads += [threading.Thread(target=predict_client) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert errors == [] and len(got) == 40
    assert all(overlay == expected[i] for i, _, overlay in got)
    assert base64.b64decode(expected[0].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
