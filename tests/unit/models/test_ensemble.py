"""Probability-averaging wrappers: the ensemble, TTA and MC dropout, checked against their definitions."""

from __future__ import annotations

import math
import threading

import pytest
import torch
from torch import nn

from imgclf.errors import ModelError
from imgclf.models import EnsembleNet, HedgedNet, create_model, mean_prob_logits, mutual_information


def _x(n: int = 4) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(0))  # (B, 3, H, W)


def test_mean_prob_logits_recover_the_mean_probabilities() -> None:
    z = torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(1))  # (K, B, C)
    torch.testing.assert_close(mean_prob_logits(z).softmax(-1), z.softmax(-1).mean(0))
    torch.testing.assert_close(torch.sigmoid(mean_prob_logits(z, "sigmoid")), torch.sigmoid(z).mean(0))


def test_mutual_information_is_zero_for_agreement_and_large_for_confident_disagreement() -> None:
    same = torch.tensor([[[3.0, 0.0]]]).repeat(4, 1, 1)
    assert mutual_information(same).abs().max() < 1e-6
    split = torch.tensor([[[20.0, 0.0]], [[0.0, 20.0]]])
    assert mutual_information(split).item() == pytest.approx(torch.log(torch.tensor(2.0)).item(), abs=1e-3)
    # per label: H(mean of 1 and 0.5) - mean(H(1), H(0.5)) = H(0.75) - ln(2) / 2; two labels
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert mutual_information(split, "sigmoid").item() == pytest.approx(2 * (h - math.log(2) / 2), abs=1e-4)


def test_ensemble_forward_is_the_mean_of_members_and_meets_the_contract() -> None:
    torch.manual_seed(0)
    members = [create_model("test_cnn", 3).eval() for _ in range(3)]
    net = EnsembleNet(members).eval()
    x = _x()
    with torch.no_grad():
        expected = torch.stack([m(x).softmax(-1) for m in members]).mean(0)
        torch.testing.assert_close(net(x).softmax(-1), expected)
        feats = net.forward_features(x)
        assert feats.shape == (4, net.num_features)
        torch.testing.assert_close(net.forward_head(feats), net(x))
        torch.testing.assert_close(net.member_logits(feats), net.member_logits(x))


def test_ensemble_refuses_mismatched_members() -> None:
    with pytest.raises(ModelError, match="at least 2"):
        EnsembleNet([create_model("test_cnn", 3)])
    with pytest.raises(ModelError, match="number of classes"):
        EnsembleNet([create_model("test_cnn", 3), create_model("test_cnn", 4)])


def test_flip_tta_averages_the_original_and_the_mirror() -> None:
    torch.manual_seed(0)
    base = create_model("test_cnn", 3).eval()
    net = HedgedNet(base, tta="flip").eval()
    x = _x()
    with torch.no_grad():
        expected = (base(x).softmax(-1) + base(x.flip(3)).softmax(-1)) / 2
        torch.testing.assert_close(net(x).softmax(-1), expected)
        assert net.member_logits(x).shape == (2, 4, 3)
        assert HedgedNet(base, tta="flip+crop").member_logits(x).shape == (6, 4, 3)
        feats = net.forward_features(x)
        torch.testing.assert_close(net.forward_head(feats), net(x))
        torch.testing.assert_close(net.forward_head(feats, pre_logits=True),
                                   base.forward_head(base.forward_features(x), pre_logits=True))  # fmt: skip


def test_flip_shift_tta_adds_one_pixel_moves_of_the_image_and_its_mirror() -> None:
    torch.manual_seed(0)
    base = create_model("test_cnn", 3).eval()
    x = torch.rand(2, 3, 32, 32)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    moves = [padded[..., :32, :32], padded[..., 2:, 2:]]  # up-left and down-right by 1 px (32 px / 32)
    views = [x, x.flip(3), moves[0], moves[0].flip(3), moves[1], moves[1].flip(3)]
    with torch.no_grad():
        expected = torch.stack([base(v).softmax(-1) for v in views]).mean(0)
        torch.testing.assert_close(HedgedNet(base, tta="flip+shift").eval()(x).softmax(-1), expected)


def test_mc_dropout_turns_on_only_dropout_and_restores_it() -> None:
    torch.manual_seed(0)
    base = create_model("lenet5", 3, drop_rate=0.5).eval()
    net = HedgedNet(base, mc_dropout=8).eval()
    x = _x()
    with torch.no_grad():
        passes = net.member_logits(x)  # (8, B, C)
    assert passes.shape == (8, 4, 3)
    assert (passes[0] - passes[1]).abs().max() > 0  # stochastic passes
    assert not any(m.training for m in base.modules())  # every layer back in eval mode
    bn = create_model("test_cnn", 3, drop_rate=0.5).eval()
    stats = bn.features[1].running_mean.clone()
    with torch.no_grad():
        HedgedNet(bn, mc_dropout=3)(x)
    torch.testing.assert_close(bn.features[1].running_mean, stats)  # batch norm was not updated


def test_mc_dropout_on_a_model_without_dropout_says_how_to_fix() -> None:
    with pytest.raises(ModelError, match="model.drop_rate"):
        HedgedNet(create_model("test_cnn", 3), mc_dropout=5)
    with pytest.raises(ModelError, match="tta"):
        HedgedNet(create_model("test_cnn", 3), tta="rotate")


def test_ensemble_builds_from_member_records() -> None:
    net = create_model("ensemble", 3, members=[{"architecture": "test_cnn", "arch_args": {"drop_rate": 0.1}},
                                               {"architecture": "lenet5", "arch_args": {}}])  # fmt: skip
    assert isinstance(net, EnsembleNet) and len(net.members) == 2 and isinstance(net.members[1], nn.Module)
    with pytest.raises(ModelError, match="no arguments"):
        create_model("resnet18", 3, members=[])


class _Paused(nn.Module):
    """A dropout model whose first pass in thread "A" waits until thread "B" has started a pass (or 1 s), and
    whose passes in "B" wait until "A" has finished: the interleaving that races an unguarded MC-dropout switch."""

    num_classes, num_features = 2, 4

    def __init__(self) -> None:
        super().__init__()
        self.drop, self.fc = nn.Dropout(0.5), nn.Linear(4, 2)
        self.a_inside, self.b_inside, self.a_done = threading.Event(), threading.Event(), threading.Event()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        name = threading.current_thread().name
        if name == "A" and not self.a_inside.is_set():
            self.a_inside.set()
            self.b_inside.wait(timeout=1.0)  # unguarded, B switches the layers while A is here
        elif name == "B":
            self.b_inside.set()
            self.a_done.wait(timeout=5.0)  # ... and restores what it saw (dropout on) after A has finished
        return self.fc(self.drop(x))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x if pre_logits else self.fc(x)


def test_concurrent_mc_dropout_passes_never_leave_dropout_switched_on() -> None:
    base = _Paused().eval()
    nets = [HedgedNet(base, mc_dropout=3), HedgedNet(base, mc_dropout=3)]  # two wrappers, one model
    x = torch.randn(2, 4)
    a = threading.Thread(target=lambda: nets[0].member_logits(x), name="A")
    b = threading.Thread(target=lambda: nets[1].member_logits(x), name="B")
    a.start()
    assert base.a_inside.wait(timeout=10)
    b.start()
    a.join()
    base.a_done.set()
    b.join()
    assert not base.drop.training  # dropout is off again for every other user of the model
    with torch.no_grad():
        torch.testing.assert_close(base(x), base(x))


def test_disagreement_score_from_features_and_stored_heads_is_the_members_mutual_information() -> None:
    from imgclf.models import ensemble_head_stats
    from imgclf.tasks import ood_score

    torch.manual_seed(0)
    net = EnsembleNet([create_model("test_cnn", 3), create_model("lenet5", 3)]).eval()
    x = _x(6)
    with torch.no_grad():
        logits, mi, feats = net.hedged_outputs(x)
        torch.testing.assert_close(mi, mutual_information(torch.stack([m(x) for m in net.members])))
    torch.testing.assert_close(logits, net(x))
    stats = ensemble_head_stats(net)
    torch.testing.assert_close(ood_score("disagreement", logits, features=feats, stats=stats), -mi)
    with pytest.raises(ModelError, match="needs an ensemble"):
        ensemble_head_stats(create_model("test_cnn", 3))
