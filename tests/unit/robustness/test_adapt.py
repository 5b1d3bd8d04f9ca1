"""Test-time adaptation: batch statistics and TENT on a copy, never the original model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from imgclf.errors import ConfigError, DataError
from imgclf.robustness import TestTimeAdapter, adapted_corruption_accuracy


def bn_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 3)).eval()  # fmt: skip


def test_bn_adaptation_normalises_with_the_batch_statistics_and_leaves_the_original_alone() -> None:
    net = bn_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    adapted = TestTimeAdapter(net, "bn")
    x = torch.rand(16, 3, 8, 8) * 5 + 2  # far from the (untrained) running statistics
    conv_out = net[0](x)
    bn = nn.functional.batch_norm(conv_out, None, None, net[1].weight, net[1].bias, training=True)
    expected = net[2:](bn)
    assert torch.allclose(adapted(x), expected, atol=1e-5)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items()), "the original model changed"
    assert not torch.allclose(net(x), expected, atol=1e-3)


def test_tent_lowers_the_entropy_of_a_stream_and_resets() -> None:
    net = bn_net()
    adapted = TestTimeAdapter(net, "tent", lr=1e-2)
    x = torch.rand(32, 3, 8, 8)

    def entropy(logits: torch.Tensor) -> float:
        p = logits.softmax(1)
        return float(-(p * p.clamp_min(1e-12).log()).sum(1).mean())

    first = entropy(adapted(x))
    for _ in range(20):
        last = entropy(adapted(x))
    assert last < first
    weight = adapted.model[1].weight.detach().clone()
    assert not torch.equal(weight, net[1].weight) and net[1].weight.grad is None
    adapted.reset()
    assert torch.equal(adapted.model[1].weight, net[1].weight)
    with torch.inference_mode():  # works inside the inference loop too
        assert adapted(x).shape == (32, 3)
    episodic = TestTimeAdapter(net, "tent", lr=1e-2, episodic=True)
    assert torch.allclose(episodic(x), episodic(x), atol=1e-6)  # no memory across batches


def test_adapters_refuse_models_without_batchnorm_and_single_images() -> None:
    with pytest.raises(ConfigError, match="BatchNorm"):
        TestTimeAdapter(nn.Sequential(nn.Flatten(), nn.Linear(3, 2)), "bn")
    with pytest.raises(ConfigError, match="tent"):
        TestTimeAdapter(bn_net(), "magic")
    with pytest.raises(DataError, match="empty"):
        TestTimeAdapter(bn_net(), "bn")(torch.rand(0, 3, 8, 8))


def test_a_lone_image_is_answered_with_the_statistics_adapted_so_far() -> None:
    net = bn_net()
    adapted = TestTimeAdapter(net, "bn")
    shifted = torch.rand(64, 3, 8, 8) * 5 + 2
    for _ in range(30):  # running statistics follow the stream (momentum 0.1)
        adapted(shifted)
    alone = adapted(shifted[:1])
    assert torch.allclose(alone, adapted(shifted)[:1], atol=0.02)
    assert not torch.allclose(alone, net(shifted[:1]), atol=0.1)


def test_adapted_corruption_report_runs_every_stream_fresh() -> None:
    x, y = torch.rand(24, 3, 8, 8), torch.randint(0, 3, (24,))
    plain = adapted_corruption_accuracy(bn_net(), (x, y), None, ["fog"], [3], batch_size=12)
    twice = [adapted_corruption_accuracy(bn_net(), (x, y), "bn", ["fog", "snow"], [3, 5], batch_size=12)
             for _ in range(2)]  # fmt: skip
    assert plain.severities == (3,) and set(twice[0].accuracies) == {"fog", "snow"}
    assert twice[0].to_dict() == twice[1].to_dict()  # streams are independent of what ran before
