"""Starting weights: safetensors files (never pickles), fresh heads on class-count changes, offline pretrained."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from imgclf.errors import ModelError
from imgclf.models import create_model, load_weights, split_parameters


def _save(model: torch.nn.Module, path: Path, prefix: str = "") -> Path:
    save_file({prefix + k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


@pytest.fixture
def no_pickles(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything calls torch.load (pickle) while loading weights."""

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.load must never be used for weight files")

    monkeypatch.setattr(torch, "load", forbidden)


@pytest.mark.parametrize("name", ["resnet20_cifar", "test_vit", "test_resnet"])
def test_new_class_count_keeps_backbone_and_gets_fresh_head(name: str, tmp_path: Path, no_pickles: None) -> None:
    torch.manual_seed(0)
    source = create_model(name, 10)
    path = _save(source, tmp_path / "w.safetensors")
    torch.manual_seed(1)
    target = create_model(name, 3, weights=str(path))
    assert target.num_classes == 3
    src_sd, tgt_sd = source.state_dict(), target.state_dict()
    backbone_ids = {id(p) for p in split_parameters(target)[0]}
    names = {id(p): n for n, p in target.named_parameters()}
    for pid in backbone_ids:
        assert torch.equal(tgt_sd[names[pid]], src_sd[names[pid]]), names[pid]
    head = split_parameters(target)[1]
    assert head and all(p.shape[0] == 3 for p in head)  # fresh head sized for the user's classes
    x = torch.randn(2, 3, 32, 32)
    source.eval(), target.eval()
    with torch.no_grad():
        assert torch.allclose(target.forward_features(x), source.forward_features(x))


def test_same_class_count_restores_the_exact_model(tmp_path: Path, no_pickles: None) -> None:
    source = create_model("lenet5", 4).eval()
    target = create_model("lenet5", 4, weights=_save(source, tmp_path / "w.safetensors")).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(source(x), target(x))


@pytest.mark.parametrize("prefix", ["module.", "model.", "module._orig_mod."])
def test_wrapper_prefixes_are_stripped(prefix: str, tmp_path: Path) -> None:
    source = create_model("test_cnn", 3)
    target = create_model("test_cnn", 3, weights=_save(source, tmp_path / "w.safetensors", prefix))
    assert torch.equal(target.features[0].weight, source.features[0].weight)


def test_load_weights_reports_fresh_head(tmp_path: Path) -> None:
    path = _save(create_model("test_cnn", 7), tmp_path / "w.safetensors")
    report = load_weights(create_model("test_cnn", 2), path)
    assert report.fresh_head == ("fc.bias", "fc.weight")
    assert report.loaded == len(create_model("test_cnn", 2).state_dict()) - 2
    assert report.to_dict()["path"] == str(path)


def test_other_architecture_is_rejected_with_its_keys(tmp_path: Path) -> None:
    path = _save(create_model("resnet20_cifar", 3), tmp_path / "r20.safetensors")
    with pytest.raises(ModelError) as err:
        create_model("resnet56_cifar", 3, weights=str(path))
    msg = str(err.value)
    assert "r20.safetensors" in msg and "missing" in msg and "layer1.3" in msg


def test_wrong_backbone_shape_is_rejected(tmp_path: Path) -> None:
    sd = create_model("test_cnn", 3).state_dict()
    sd["features.0.weight"] = torch.zeros(8, 3, 3, 3)
    save_file(sd, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ModelError, match=r"wrong shape \(features\.0\.weight: file \(8, 3, 3, 3\)"):
        create_model("test_cnn", 3, weights=str(tmp_path / "bad.safetensors"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="nope.safetensors does not exist"):
        create_model("test_cnn", 3, weights=str(tmp_path / "nope.safetensors"))


def test_pickle_files_are_refused(tmp_path: Path, no_pickles: None) -> None:
    path = tmp_path / "w.pt"
    path.write_bytes(b"not opened")
    with pytest.raises(ModelError, match="w.pt is not a .safetensors file"):
        create_model("test_cnn", 3, weights=str(path))


def test_corrupt_safetensors_file(tmp_path: Path) -> None:
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="junk.safetensors is not a readable safetensors file"):
        create_model("test_cnn", 3, weights=str(path))


def test_torchvision_adapter_loads_raw_torchvision_keys(tmp_path: Path) -> None:
    import torchvision

    tv = torchvision.models.mobilenet_v3_small(num_classes=1000)  # keys without the adapter's "model." prefix
    path = _save(tv, tmp_path / "mnv3.safetensors")
    model = create_model("tv/mobilenet_v3_small", 3, weights=path)
    assert torch.equal(model.model.features[0][0].weight, tv.features[0][0].weight)
    assert torch.equal(model.model.classifier[0].weight, tv.classifier[0].weight)  # hidden head layer kept
    assert model.get_classifier().out_features == 3


def test_builtins_have_no_pretrained_weights() -> None:
    with pytest.raises(ModelError, match="no pretrained weights"):
        create_model("resnet20_cifar", 10, weights="pretrained")


@pytest.mark.parametrize("name", ["test_resnet", "tv/resnet18"])
def test_pretrained_offline_names_the_fix(name: str, no_network: None) -> None:
    with pytest.raises(ModelError) as err:
        create_model(name, 3, weights="pretrained")
    msg = str(err.value)
    assert msg.startswith(f"could not load pretrained weights for {name} (")
    assert "Offline? Save them once as safetensors and pass --weights FILE.safetensors" in msg
