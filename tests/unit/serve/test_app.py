"""The HTTP API in-process (FastAPI TestClient): answers, refusals with the right 4xx, auth, metrics, audit."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from pathlib import Path

import numpy as np
import pytest

import imgclf
from imgclf.metrics import apply_temperature
from imgclf.monitor import reference_stats
from imgclf.serve import Predictor, ServeSettings, build_app, create_app

from .conftest import client_for, png_bytes
from .test_decode import huge_png_header


def _corrupt(blob: bytes) -> bytes:
    """Valid PNG header and size, pixel data scrambled."""
    out = bytearray(blob)
    for i in range(60, len(out) - 20, 7):
        out[i] ^= 0xFF
    return bytes(out)


def _files(*blobs: bytes) -> list:
    return [("file", (f"img{i}.png", b, "image/png")) for i, b in enumerate(blobs)]


@pytest.fixture(scope="module")
def client(base_bundle: Path):
    with client_for(create_app(base_bundle, ServeSettings(max_body_mb=0.5, max_images=4, max_pixels=250_000,
                                                          top_k=2))) as c:  # fmt: skip
        yield c


def test_predict_multipart_batch_gives_calibrated_topk_per_image(client, base_bundle: Path) -> None:
    blobs = [png_bytes(i) for i in range(3)]
    res = client.post("/v1/predict", files=_files(*blobs))
    assert res.status_code == 200
    body = res.json()
    clf = imgclf.load(base_bundle)
    assert body["model"] == clf.meta_.weights_sha256 and body["latency_ms"] > 0
    import io

    from PIL import Image

    probs = apply_temperature(clf.predict_logits([Image.open(io.BytesIO(b)) for b in blobs])[1], 1.5)
    for pred, row, blob in zip(body["predictions"], probs, blobs):
        assert [t["label"] for t in pred["topk"]] == [clf.classes[j] for j in np.argsort(-row)[:2]]
        assert pred["topk"][0]["score"] == pytest.approx(row.max(), abs=1e-6)
        assert pred["label"] == pred["topk"][0]["label"] and pred["unknown"] is False
        assert pred["sha256"] == hashlib.sha256(blob).hexdigest() and (pred["width"], pred["height"]) == (40, 32)
    assert [p["name"] for p in body["predictions"]] == ["img0.png", "img1.png", "img2.png"]


def test_json_base64_and_data_urls_give_the_same_answer(client) -> None:
    blob = png_bytes(7)
    b64 = base64.b64encode(blob).decode()
    a = client.post("/v1/predict", files=_files(blob)).json()["predictions"][0]
    b = client.post("/v1/predict", json={"images": [b64, "data:image/png;base64," + b64]}).json()["predictions"]
    for p in b:
        assert [t["label"] for t in p["topk"]] == [t["label"] for t in a["topk"]]
        assert [t["score"] for t in p["topk"]] == pytest.approx([t["score"] for t in a["topk"]])


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"content": b"hello", "headers": {"content-type": "text/plain"}}, 415, "unsupported_media_type"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 422, "bad_json"),
        ({"json": {"pictures": []}}, 422, "bad_json"),
        ({"content": b"[" * 200_000, "headers": {"content-type": "application/json"}}, 422, "bad_json"),
        ({"json": {"images": ["@@@not base64@@@"]}}, 422, "bad_base64"),
        ({"json": {"images": []}}, 422, "no_images"),
        ({"files": _files(*[png_bytes(i) for i in range(5)])}, 413, "too_many_images"),
        ({"files": _files(b"")}, 422, "empty_image"),
        ({"files": _files(_corrupt(png_bytes(4)))}, 422, "corrupt_image"),
        ({"files": _files(b"plain text upload")}, 415, "not_an_image"),
        ({"files": _files(png_bytes(3)[:150])}, 422, "truncated_image"),
        ({"files": _files(huge_png_header(1000, 1000))}, 413, "too_many_pixels"),
        ({"files": _files(png_bytes(5, (2, 400)))}, 422, "extreme_aspect_ratio"),
        ({"files": _files(huge_png_header(30_000, 30_000))}, 413, "too_many_pixels"),
        ({"content": b"x" * 600_000, "headers": {"content-type": "application/json"}}, 413, "body_too_large"),
        ({"content": (b"x" * 65536 for _ in range(10)), "headers": {"content-type": "application/json"}}, 413,
         "body_too_large"),  # streamed (chunked): counted as it arrives
    ],
)
def test_bad_input_gets_the_right_4xx_with_a_reason(client, kwargs: dict, status: int, code: str) -> None:
    res = client.post("/v1/predict", **kwargs)
    assert res.status_code == status, res.text
    assert res.json()["code"] == code and res.json()["detail"]
    assert client.get("/healthz").status_code == 200
    assert client.post("/v1/predict", files=_files(png_bytes(1))).status_code == 200  # still serving


def test_model_info_health_and_page(client, base_bundle: Path) -> None:
    info = client.get("/v1/model").json()
    meta = imgclf.load(base_bundle).meta_
    assert info["classes"] == list(meta.classes) and info["version"] == meta.weights_sha256
    assert info["preprocessing"]["input_size"] == 32 and info["metrics"] == {"test": {"acc": 0.9}}
    assert info["rejection_active"] is False and info["explain"] is True
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["ready"] is True
    page = client.get("/")
    assert page.status_code == 200 and '<script src="/ui/app.js"' in page.text and "http" not in page.text.lower()
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/ui/app.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/ui/style.css").headers["content-type"].startswith("text/css")


def test_metrics_count_requests_batches_and_errors(client) -> None:
    before = client.get("/metrics").text
    client.post("/v1/predict", files=_files(png_bytes(1), png_bytes(2)))
    client.post("/v1/predict", files=_files(b"nope"))
    text = client.get("/metrics").text
    assert client.get("/metrics").headers["content-type"].startswith("text/plain; version=0.0.4")

    def value(src: str, prefix: str) -> float:
        lines = [ln for ln in src.splitlines() if ln.startswith(prefix + " ")]
        return float(lines[0].split()[-1]) if lines else 0.0

    key = 'imgclf_requests_total{route="/v1/predict",status="200"}'
    assert value(text, key) == value(before, key) + 1
    assert value(text, 'imgclf_errors_total{reason="not_an_image"}') == value(
        before, 'imgclf_errors_total{reason="not_an_image"}') + 1  # fmt: skip
    assert value(text, "imgclf_images_total") == value(before, "imgclf_images_total") + 2
    assert value(text, "imgclf_batch_size_count") > value(before, "imgclf_batch_size_count")
    assert 'imgclf_request_latency_seconds_bucket{route="/v1/predict",le="+Inf"}' in text
    assert "imgclf_ready 1" in text and "imgclf_model_info{" in text


def test_bearer_token_guards_everything_but_health_checks(base_bundle: Path) -> None:
    with client_for(create_app(base_bundle, ServeSettings(token="s3cret"))) as c:
        for method, path in [("post", "/v1/predict"), ("get", "/v1/model"), ("get", "/metrics")]:
            res = getattr(c, method)(path)
            assert res.status_code == 401 and res.headers["www-authenticate"].startswith("Bearer")
            wrong = getattr(c, method)(path, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
        assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200
        assert c.get("/").status_code == 200  # the page shell; its API calls carry the token
        ok = c.post("/v1/predict", files=_files(png_bytes(1)), headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200


def test_rejected_images_are_flagged_unknown_and_counted(make_bundle) -> None:
    bundle = make_bundle(rejection={"score": "msp", "threshold": 0.999})  # nothing is that sure
    with client_for(create_app(bundle, ServeSettings())) as c:
        preds = c.post("/v1/predict", files=_files(png_bytes(1), png_bytes(2))).json()["predictions"]
        assert all(p["unknown"] for p in preds)
        assert "imgclf_rejections_total 2" in c.get("/metrics").text
        assert c.get("/v1/model").json()["rejection_active"] is True
    with client_for(create_app(bundle, ServeSettings(reject=False))) as c:
        assert not c.post("/v1/predict", files=_files(png_bytes(1))).json()["predictions"][0]["unknown"]


def test_audit_log_records_each_prediction_without_the_image(make_bundle, tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    blobs = [png_bytes(1), png_bytes(2)]
    with client_for(create_app(make_bundle(), ServeSettings(log=log))) as c:
        body = c.post("/v1/predict", files=_files(*blobs), headers={"X-Request-ID": "req-1"}).json()
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(recs) == 2
    for rec, blob, pred in zip(recs, blobs, body["predictions"]):
        assert rec["sha256"] == hashlib.sha256(blob).hexdigest() and rec["request_id"] == "req-1"
        assert (rec["width"], rec["height"], rec["bytes"]) == (40, 32, len(blob))
        assert rec["label"] == pred["label"] and rec["confidence"] == pytest.approx(pred["confidence"], abs=1e-6)
        assert rec["model"] == body["model"] and rec["ood_kind"] == "msp" and "ood_score" in rec
        assert [t["label"] for t in rec["topk"]] == [t["label"] for t in pred["topk"]]
        assert "image" not in rec and "time" in rec
    with client_for(create_app(make_bundle(), ServeSettings(log=log, log_images=True))) as c:
        c.post("/v1/predict", files=_files(blobs[0]))
    last = json.loads(log.read_text().splitlines()[-1])
    assert base64.b64decode(last["image"]) == blobs[0]


def test_drift_gauges_appear_after_a_window(make_bundle, tmp_path: Path) -> None:
    clf = imgclf.load(make_bundle())
    import io

    from PIL import Image

    images = [Image.open(io.BytesIO(png_bytes(i))) for i in range(40)]
    ref = reference_stats(apply_temperature(clf.predict_logits(images)[1], 1.5), clf.embed(images))
    log = tmp_path / "audit.jsonl"
    with client_for(create_app(make_bundle(extra={"monitor": ref}), ServeSettings(drift_window=10, log=log))) as c:
        for i in range(0, 10, 5):
            c.post("/v1/predict", files=_files(*[png_bytes(100 + i + k) for k in range(5)]))
        app_state = c.app.state.imgclf
        for _ in range(200):
            if app_state.drift.latest is not None:
                break
            threading.Event().wait(0.02)
        text = c.get("/metrics").text
    assert "imgclf_drift_windows_total 1" in text
    for test in ("confidence_ks", "class_chi2", "feature_mmd"):
        assert f'imgclf_drift_p_value{{test="{test}"}}' in text
    assert all(len(json.loads(line)["features"]) == len(ref["features"]["sample"][0])
               for line in log.read_text().splitlines())  # fmt: skip


class GatedPredictor(Predictor):
    """The real predictor, held at a gate: lets the tests fill the queue or run past a deadline."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.gate, self.entered = threading.Event(), threading.Event()

    def __call__(self, tensors):
        self.entered.set()
        self.gate.wait(60)
        return super().__call__(tensors)

    def warmup(self) -> None:  # no gate for the warm-up
        Predictor.__call__(self, [self.preprocess(__import__("PIL.Image").Image.new("RGB", (32, 32)))])


def test_deadline_gives_504_and_a_full_queue_gives_429_with_retry_after(base_bundle: Path) -> None:
    pred = GatedPredictor(imgclf.load(base_bundle))
    app = build_app(pred, ServeSettings(max_batch=1, max_wait_ms=0, queue_size=1))
    with client_for(app) as c:
        results: dict[str, object] = {}
        first = threading.Thread(target=lambda: results.setdefault("first", c.post(
            "/v1/predict", files=_files(png_bytes(1)))))  # fmt: skip
        first.start()
        assert pred.entered.wait(10)  # the worker holds image 1; the queue (1 slot) is empty
        late = c.post("/v1/predict", files=_files(png_bytes(2)), headers={"X-Timeout-Ms": "100"})
        assert late.status_code == 504 and late.json()["code"] == "deadline"
        second = threading.Thread(target=lambda: results.setdefault("second", c.post(
            "/v1/predict", files=_files(png_bytes(3)))))  # fmt: skip
        second.start()
        for _ in range(1000):
            if app.state.imgclf.batcher.queued == 1:
                break
            threading.Event().wait(0.01)
        assert app.state.imgclf.batcher.queued == 1, "the second request never reached the queue"
        busy = c.post("/v1/predict", files=_files(png_bytes(4)))
        assert busy.status_code == 429 and int(busy.headers["retry-after"]) >= 1
        assert c.get("/healthz").status_code == 200
        pred.gate.set()
        first.join(10)
        second.join(10)
        assert results["first"].status_code == 200 and results["second"].status_code == 200
        assert c.post("/v1/predict", files=_files(png_bytes(5))).status_code == 200


def test_readiness_waits_for_warm_up(base_bundle: Path) -> None:
    class SlowWarmup(Predictor):
        gate = threading.Event()

        def warmup(self) -> None:
            self.gate.wait(10)
            super().warmup()

    pred = SlowWarmup(imgclf.load(base_bundle))
    with client_for(build_app(pred, ServeSettings()), ready=False) as c:
        assert c.get("/healthz").status_code == 200
        res = c.get("/readyz")
        assert res.status_code == 503 and res.json()["ready"] is False
        pred.gate.set()
        state = c.app.state.imgclf
        assert pred is state.predictor and state.batcher.wait_ready(10) and state.explain_batcher.wait_ready(10)
        assert c.get("/readyz").status_code == 200


def test_explain_returns_a_gradcam_overlay_png(client) -> None:
    import io

    from PIL import Image

    res = client.post("/v1/explain", files=_files(png_bytes(1)))
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["method"] == "gradcam" and body["overlay"].startswith("data:image/png;base64,")
    picture = Image.open(io.BytesIO(base64.b64decode(body["overlay"].split(",", 1)[1])))
    assert picture.size[0] > 0 and picture.mode == "RGB"
    assert client.post("/v1/explain", files=_files(png_bytes(1), png_bytes(2))).status_code == 422
    assert client.post("/v1/explain", files=_files(b"not an image")).status_code in (415, 422)


def test_openapi_document_is_served_with_the_answer_schema_predict_gives(client) -> None:
    res = client.get("/openapi.json")
    assert res.status_code == 200, res.text
    doc = res.json()
    assert {"/v1/predict", "/v1/explain", "/v1/model", "/healthz"} <= set(doc["paths"])
    answer = doc["paths"]["/v1/predict"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    item = answer["properties"]["predictions"]["items"]
    body = client.post("/v1/predict", files=_files(png_bytes(1))).json()
    assert set(answer["required"]) <= set(body) and set(body) <= set(answer["properties"])
    assert set(item["required"]) <= set(body["predictions"][0]) <= set(item["properties"])
    assert "path" not in item["properties"]  # REST answers name the upload (`name`, `index`), not a path


def test_openapi_document_is_behind_the_token_like_the_model_info(base_bundle: Path) -> None:
    with client_for(create_app(base_bundle, ServeSettings(token="s3cret"))) as c:
        assert c.get("/openapi.json").status_code == 401
        assert c.get("/openapi.json", headers={"Authorization": "Bearer s3cret"}).json()["info"]["title"] == "imgclf"
