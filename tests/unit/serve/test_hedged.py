"""``imgclf serve --tta / --mc-dropout``: the server averages exactly as predict does, answers with the uncertainty,
refuses a model without dropout at start-up, and concurrent requests never leave dropout switched on."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from tests.integration._helpers import cli

import imgclf
from imgclf.api import hedge
from imgclf.bundle import BundleMeta, save_bundle
from imgclf.config import DataConfig
from imgclf.errors import ConfigError, ModelError
from imgclf.models import create_model
from imgclf.serve import ServeSettings, create_app

from .conftest import CLASSES, client_for, png_bytes


def _files(*blobs: bytes) -> list:
    return [("file", (f"img{i}.png", b, "image/png")) for i, b in enumerate(blobs)]


@pytest.fixture(scope="module")
def dropout_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = create_model("test_cnn", len(CLASSES), drop_rate=0.5)
    prep = DataConfig(input_size=32, resize_size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    meta = BundleMeta("test_cnn", CLASSES, prep, arch_args={"drop_rate": 0.5}, temperature=1.5)
    return save_bundle(tmp_path_factory.mktemp("drop") / "bundle", model, meta)


def test_served_tta_probabilities_are_predicts_and_carry_the_uncertainty(base_bundle: Path, tmp_path: Path) -> None:
    blobs = [png_bytes(i) for i in range(3)]
    paths = []
    for i, b in enumerate(blobs):
        paths.append(tmp_path / f"{i}.png")
        paths[-1].write_bytes(b)
    expected = hedge(imgclf.load(base_bundle), tta="flip+crop").predict(paths)
    plain = imgclf.load(base_bundle).predict(paths)
    with client_for(create_app(base_bundle, ServeSettings(tta="flip+crop", top_k=3))) as c:
        body = c.post("/v1/predict", files=_files(*blobs)).json()
        info = c.get("/v1/model").json()
    assert info["tta"] == "flip+crop" and info["uncertainty"] is True
    for got, want, raw in zip(body["predictions"], expected, plain):
        served = {t["label"]: t["score"] for t in got["topk"]}
        assert served == pytest.approx(dict(want.topk), abs=1e-5)  # the same averaging as `imgclf predict --tta`
        assert served != pytest.approx(dict(raw.topk), abs=1e-5)  # and not the unaugmented answer
        assert got["uncertainty"] > 0  # six views of a random image do not agree exactly
    with client_for(create_app(base_bundle, ServeSettings())) as c:
        assert "uncertainty" not in c.post("/v1/predict", files=_files(blobs[0])).json()["predictions"][0]


def test_mc_dropout_on_a_model_without_dropout_fails_at_start_up(base_bundle: Path) -> None:
    with pytest.raises(ModelError, match="model.drop_rate"):
        create_app(base_bundle, ServeSettings(mc_dropout=4))
    r = cli("serve", str(base_bundle), "--mc-dropout", "4", "--port", "0")
    assert r.returncode == 2 and "model.drop_rate" in r.stderr and "Traceback" not in r.stderr
    with pytest.raises(ConfigError, match="adapt"):
        ServeSettings(mc_dropout=4, adapt="bn")


def test_concurrent_mc_dropout_requests_each_get_stochastic_passes_and_leave_dropout_off(
    dropout_bundle: Path,
) -> None:
    app = create_app(dropout_bundle, ServeSettings(mc_dropout=16, max_batch=2, max_wait_ms=1.0))
    base = app.state.imgclf.predictor.model.model
    drops = [m for m in base.modules() if isinstance(m, torch.nn.Dropout)]
    blob = png_bytes(7)
    with client_for(app) as c, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: c.post("/v1/predict", files=_files(blob)), range(16)))
        explained = c.post("/v1/explain", files=_files(blob))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    preds = [a.json()["predictions"][0] for a in answers]
    assert all(p["uncertainty"] > 0 for p in preds)  # every request's passes had dropout on ...
    assert len({p["topk"][0]["score"] for p in preds}) > 1  # ... with draws of its own
    assert drops and not any(d.training for d in drops)  # ... and it is off again afterwards
    assert explained.status_code == 200
    # the deterministic model is untouched: eval-mode answers are repeatable
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(base.eval()(x), base(x))
