"""Every training option a user can switch on does what it says on a real (small) run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import imgclf
from imgclf import data as D
from imgclf import engine as E
from imgclf.bundle import BundleMeta, load_bundle, save_bundle
from imgclf.config import DataConfig
from imgclf.models import create_model, split_parameters
from imgclf.utils import cpu_supports_bf16

BASE = ["data.workers=0", "train.report=false", "data.batch_size=8"]


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 flat images (train 48 = 6 batches of 8)."""
    return D.make_synthetic_dataset(tmp_path_factory.mktemp("opts") / "d", per_class=20, size=32, layout="flat")


def _fit(src: Path, out: Path, name: str, sets: list[str], epochs: int = 3,
         model: str = "test_cnn") -> imgclf.Classifier:  # fmt: skip
    return imgclf.fit(src, model=model, epochs=epochs, img_size=32, out=str(out), name=name,
                      sets=[*BASE, *sets])  # fmt: skip


def _history(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def _weights(clf: imgclf.Classifier) -> dict[str, torch.Tensor]:
    return load_file(clf.result_.bundle_dir / "model.safetensors")


def test_bf16_autocast_is_really_active_and_accumulation_halves_the_steps(src: Path, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture) -> None:
    """bf16 changes the arithmetic (so the weights), where two fp32 runs (amp auto = off on CPU) are identical;
    accumulate=2 makes one optimizer step per two batches; mixing, augmentation and clipping run along, no NaN."""
    mixing = ["train.channels_last=true", "train.grad_clip=1.0", "data.mixup=0.2", "data.cutmix=1.0",
              "data.augment=strong", "train.ema=false"]  # fmt: skip
    fp32_a = _fit(src, tmp_path, "fp32-a", ["train.amp=auto", *mixing], epochs=1)
    fp32_b = _fit(src, tmp_path, "fp32-b", ["train.amp=auto", *mixing], epochs=1)
    bf16 = _fit(src, tmp_path, "bf16", ["train.amp=bf16", *mixing], epochs=1)
    a, b, c = _weights(fp32_a), _weights(fp32_b), _weights(bf16)
    assert all(torch.equal(a[k], b[k]) for k in a)  # the run is deterministic: any difference comes from bf16
    diff = max(float((a[k] - c[k]).abs().max()) for k in a if a[k].is_floating_point())
    assert 0 < diff < 0.5, diff  # bf16 rounding, not a different training
    assert all(m["train_loss"] == m["train_loss"] for m in _history(bf16.result_.run_dir))  # finite, not NaN

    # the warning a CPU without bf16 instructions gets (bf16 is emulated there: several times slower than fp32)
    warned = "bf16 is emulated here" in " ".join(capsys.readouterr().out.split())  # rich wraps lines
    assert warned == (not cpu_supports_bf16())

    acc = _fit(src, tmp_path, "accumulate", ["train.accumulate=2", "train.amp=bf16", *mixing], epochs=2)
    _, meta = E.load_checkpoint(acc.result_.run_dir / "checkpoints" / "last.safetensors")
    _, plain = E.load_checkpoint(fp32_a.result_.run_dir / "checkpoints" / "last.safetensors")
    assert plain["step"] == 6 and meta["step"] == 2 * 3  # 6 batches per epoch: 6 steps, or 3 with accumulate=2


def test_sgd_with_a_step_schedule_follows_it(src: Path, tmp_path: Path) -> None:
    sets = ["optim.optimizer=sgd", "optim.lr=0.05", "optim.warmup_epochs=0", "optim.schedule=step",
            "optim.step_epochs=1", "train.loss=focal",
            "train.class_weights=balanced", "data.sampler=balanced", "train.ema=false", "train.label_smoothing=0"]
    clf = _fit(src, tmp_path, "sgd", sets)
    lines = _history(clf.result_.run_dir)
    lrs = [m["lr"] for m in lines]
    assert lrs == pytest.approx([0.05, 0.05 * 0.1, 0.05 * 0.01])  # the rate each epoch trained at: x0.1 per epoch
    assert all(m["train_loss"] == m["train_loss"] for m in lines)
    assert clf.predict([str(src / "red")])[0].label in clf.classes


def test_a_linear_probe_leaves_the_backbone_weights_unchanged(src: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    init = save_bundle(tmp_path / "init", create_model("test_cnn", 3),
                       BundleMeta("test_cnn", ("blue", "green", "red"), DataConfig(input_size=32, resize_size=32)))
    clf = _fit(src, tmp_path, "probe", ["model.freeze=backbone", f"model.init={init}", "optim.lr=1e-2"])
    before, after = load_bundle(init).model, load_bundle(clf.result_.bundle_dir).model
    (b_backbone, b_head), (a_backbone, a_head) = split_parameters(before), split_parameters(after)
    assert len(b_backbone) == len(a_backbone) > 0
    assert all(torch.equal(x, y) for x, y in zip(b_backbone, a_backbone, strict=True))  # frozen: not one bit moved
    assert any(not torch.equal(x, y) for x, y in zip(b_head, a_head, strict=True))  # the head did learn


def test_patience_stops_a_run_whose_val_loss_cannot_improve(src: Path, tmp_path: Path) -> None:
    """lenet5 (no BatchNorm statistics to drift) at a learning rate too small to move a float32 weight."""
    clf = _fit(src, tmp_path, "stuck", ["train.monitor=val_loss", "train.patience=1", "optim.lr=1e-12",
                                        "optim.warmup_epochs=0"], epochs=8, model="lenet5")  # fmt: skip
    lines = _history(clf.result_.run_dir)
    assert len(lines) == 2 and clf.result_.metrics["epochs_run"] == 2  # epoch 2 did not improve: stopped


def test_imbalance_is_flagged_with_the_fix(tmp_path: Path) -> None:
    src = D.make_synthetic_dataset(tmp_path / "d", per_class=4, size=32, layout="flat")
    first = sorted((src / "red").iterdir())[0].read_bytes()
    for i in range(40):  # make 'red' 10x larger than the other classes
        (src / "red" / f"extra_{i}.png").write_bytes(first)
    from rich.console import Console

    console = Console(file=open(tmp_path / "log.txt", "w"), width=200)  # noqa: SIM115
    imgclf.fit(src, model="test_cnn", epochs=1, img_size=32, out=str(tmp_path), name="imb", console=console,
               sets=["data.workers=0", "train.report=false"])  # fmt: skip
    console.file.close()
    log = (tmp_path / "log.txt").read_text()
    assert "imbalanced" in log and "data.sampler=balanced" in log


def test_a_vit_made_for_224_trains_and_predicts_at_32_pixels(src: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """#18: `--model vit_tiny_patch16_224 --img-size 32` used to crash with "Input height (32) doesn't match"."""
    from imgclf.api import _fit as fit_module

    built: list[int | None] = []

    def counting(*args: object, **kwargs: object) -> torch.nn.Module:
        built.append(kwargs.get("img_size"))
        return create_model(*args, **kwargs)

    monkeypatch.setattr(fit_module, "create_model", counting)
    clf = _fit(src, tmp_path, "vit", [], epochs=1, model="vit_tiny_patch16_224")
    assert built == [32]  # built once, for the size asked (not at 224 first and again at 32)
    meta = json.loads((clf.result_.bundle_dir / "imgclf.json").read_text())
    assert meta["arch_args"]["img_size"] == 32 and meta["preprocessing"]["input_size"] == 32
    again = imgclf.load(clf.result_.bundle_dir)  # rebuilt from the bundle at its size
    image = next(p for p in src.rglob("*.png"))
    assert again.predict(image)[0].label == clf.predict(image)[0].label
    with pytest.raises(imgclf.errors.ModelError, match="8-pixel"):
        imgclf.fit(src, model="vit_tiny_patch16_224", epochs=1, img_size=8, out=str(tmp_path), name="vit8",
                   sets=BASE)  # fmt: skip
    assert not (tmp_path / "vit8").exists()  # nothing half-written
