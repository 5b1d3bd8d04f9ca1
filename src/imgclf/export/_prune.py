"""Structured channel pruning: remove whole Conv2d output channels so the network really gets smaller.

The model is traced with torch.fx only to *find* prunable chains; the surgery is done on the (copied) model's own
modules, so its class and methods (``forward_features``, ``reset_classifier``...) stay intact. A chain is

    Conv2d (groups=1) -> [BatchNorm2d] -> channel-wise ops (ReLU, pooling, dropout, flatten, depthwise conv +
    BatchNorm...) -> one consumer

where the consumer is a Conv2d (groups=1) or a Linear that is not the classifier, and nothing else reads the
conv's output. Outputs that feed a residual addition, a concatenation or a gate (squeeze-excite) are never
pruned, so a ResNet basic block loses channels in its inner conv only and its residual stream keeps its width; an
inverted-residual block without squeeze-excite (MobileNet) loses expansion channels, its depthwise conv with
them. Shared modules and the classifier's input width are left alone.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from imgclf.errors import ConfigError, ModelError
from imgclf.utils import eval_mode

_CHANNELWISE_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.SiLU, nn.GELU, nn.Hardswish, nn.ELU, nn.Mish, nn.Identity, nn.Dropout,
    nn.Dropout2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d,
)  # fmt: skip
_CHANNELWISE_FUNCTIONS = {
    F.relu, F.relu_, F.relu6, F.leaky_relu, F.silu, F.gelu, F.hardswish, F.elu, F.mish, F.dropout, F.max_pool2d,
    F.avg_pool2d, F.adaptive_avg_pool2d, F.adaptive_max_pool2d, torch.relu, torch.relu_,
}  # fmt: skip
_CHANNELWISE_METHODS = {"relu", "relu_", "contiguous"}
_FLATTEN_FUNCTIONS = {torch.flatten}


@dataclass
class _Chain:
    """One prunable conv, the BatchNorms on its output, and the layer that consumes its channels."""

    conv: str
    norms: list[str] = field(default_factory=list)
    depthwise: list[str] = field(default_factory=list)
    consumer: str = ""
    spatial: int = 1  # features per channel seen by a Linear consumer after flattening


def _only_tensor_arg(node: fx.Node, src: fx.Node) -> bool:
    """True when ``node`` reads ``src`` as its first argument and no other graph value."""
    others = [a for a in list(node.args[1:]) + list(node.kwargs.values()) if isinstance(a, fx.Node)]
    return bool(node.args) and node.args[0] is src and not others


def _flatten_start(node: fx.Node, modules: dict[str, nn.Module]) -> int | None:
    """The start dim of a flatten node (module, function or method) with end_dim -1, else None."""
    if node.op == "call_module" and isinstance(modules[node.target], nn.Flatten):
        m = modules[node.target]
        return m.start_dim if m.end_dim == -1 else None
    if (node.op == "call_function" and node.target in _FLATTEN_FUNCTIONS) or (
        node.op == "call_method" and node.target == "flatten"
    ):
        start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
        end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
        return start if end == -1 and isinstance(start, int) else None
    return None


def _shape(node: fx.Node) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta")
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


def _follow(gm: fx.GraphModule, start: fx.Node, excluded: set[str]) -> _Chain | None:
    """Walk from a conv node through channel-wise ops to its single consumer; None when the chain is not prunable."""
    modules = dict(gm.named_modules())
    chain = _Chain(conv=str(start.target))
    channels = modules[chain.conv].out_channels
    node, flat = start, None  # flat: features per channel once flattened
    while True:
        users = list(node.users)
        if len(users) != 1 or not _only_tensor_arg(users[0], node):
            return None
        user = users[0]
        mod = modules.get(str(user.target)) if user.op == "call_module" else None
        start_dim = _flatten_start(user, modules)
        if start_dim is not None:
            shape = _shape(node)
            if flat is not None or start_dim != 1 or shape is None or len(shape) < 2:
                return None
            flat = int(torch.Size(shape[2:]).numel())
        elif isinstance(mod, nn.BatchNorm2d) and flat is None and str(user.target) not in excluded:
            chain.norms.append(str(user.target))
        elif isinstance(mod, nn.Conv2d) and flat is None and _is_depthwise(mod, channels):
            if str(user.target) in excluded:
                return None
            chain.depthwise.append(str(user.target))
        elif isinstance(mod, nn.Conv2d) and flat is None and str(user.target) not in excluded:
            ok = mod.groups == 1 and mod.in_channels == channels
            return _with_consumer(chain, str(user.target)) if ok else None
        elif isinstance(mod, nn.Linear) and str(user.target) not in excluded:
            per = flat if flat is not None else 1
            shape = _shape(node)
            if shape is None or len(shape) != 2 or mod.in_features != channels * per:
                return None
            chain.spatial = per
            return _with_consumer(chain, str(user.target))
        elif not (
            isinstance(mod, _CHANNELWISE_MODULES)
            or (user.op == "call_function" and user.target in _CHANNELWISE_FUNCTIONS)
            or (user.op == "call_method" and user.target in _CHANNELWISE_METHODS)
        ):
            return None
        node = user


def _is_depthwise(conv: nn.Conv2d, channels: int) -> bool:
    """A conv that maps each of ``channels`` channels to itself alone (groups = in = out)."""
    return conv.groups == conv.in_channels == conv.out_channels == channels


class _Tracer(fx.Tracer):
    """fx tracer that keeps BatchNorm2d subclasses (timm's BatchNormAct2d) as single, sliceable modules."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, nn.BatchNorm2d) or super().is_leaf_module(m, module_qualified_name)


def _with_consumer(chain: _Chain, consumer: str) -> _Chain:
    """``chain`` with its consumer set (the end of a successful walk)."""
    chain.consumer = consumer
    return chain


def _excluded(model: nn.Module, gm: fx.GraphModule) -> set[str]:
    """Modules that must keep their shape: called twice, read as attributes, or the classifier."""
    calls: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    out = {name for name, n in calls.items() if n > 1}
    out |= {n.target.rsplit(".", 1)[0] for n in gm.graph.nodes if n.op == "get_attr" and "." in n.target}
    head = model.get_classifier() if callable(getattr(model, "get_classifier", None)) else None
    heads = head if isinstance(head, tuple | list) else (head,)
    head_ids = {id(m) for h in heads if isinstance(h, nn.Module) for m in h.modules()}
    out |= {name for name, m in model.named_modules() if id(m) in head_ids}
    return out


def _keep_indices(conv: nn.Conv2d, amount: float) -> torch.Tensor | None:
    """Indices (sorted) of the output channels with the largest L1 norm; None when nothing would be removed."""
    n = conv.out_channels
    keep = max(1, int(round(n * (1.0 - amount))))
    if keep >= n:
        return None
    norms = conv.weight.detach().abs().flatten(1).sum(1)  # (out_channels,)
    return norms.topk(keep).indices.sort().values


def _param(t: torch.Tensor, like: nn.Parameter) -> nn.Parameter:
    return nn.Parameter(t.detach().clone().contiguous(), requires_grad=like.requires_grad)


def _prune_conv(conv: nn.Conv2d, out_idx: torch.Tensor | None, in_idx: torch.Tensor | None) -> None:
    w = conv.weight  # (out, in, kh, kw)
    new = w.detach()
    if out_idx is not None:
        new = new.index_select(0, out_idx.to(w.device))
        if conv.bias is not None:
            conv.bias = _param(conv.bias.detach().index_select(0, out_idx.to(w.device)), conv.bias)
        conv.out_channels = len(out_idx)
    if in_idx is not None:
        new = new.index_select(1, in_idx.to(w.device))
        conv.in_channels = len(in_idx)
    conv.weight = _param(new, w)


def _prune_depthwise(conv: nn.Conv2d, idx: torch.Tensor) -> None:
    _prune_conv(conv, idx, None)  # weight (C, 1, kh, kw): channels are the output axis
    conv.in_channels = conv.groups = len(idx)


def _prune_norm(bn: nn.BatchNorm2d, idx: torch.Tensor) -> None:
    idx = idx.to(bn.running_mean.device if bn.running_mean is not None else "cpu")
    if bn.affine:
        bn.weight = _param(bn.weight.detach().index_select(0, idx), bn.weight)
        bn.bias = _param(bn.bias.detach().index_select(0, idx), bn.bias)
    if bn.running_mean is not None:
        bn.running_mean = bn.running_mean.index_select(0, idx)
        bn.running_var = bn.running_var.index_select(0, idx)
    bn.num_features = len(idx)


def _prune_linear(fc: nn.Linear, idx: torch.Tensor, spatial: int) -> None:
    cols = (idx[:, None] * spatial + torch.arange(spatial)[None, :]).flatten()  # channel c -> its flattened features
    fc.weight = _param(fc.weight.detach().index_select(1, cols.to(fc.weight.device)), fc.weight)
    fc.in_features = len(cols)


def find_prunable(model: nn.Module, example_input: torch.Tensor) -> list[_Chain]:
    """The prunable conv chains of ``model`` (traced with torch.fx, shapes from ``example_input``)."""
    with eval_mode(model):  # traced in eval mode: modules that read self.training must bake in inference
        try:
            gm = fx.GraphModule(model, _Tracer().trace(model))
        except Exception as exc:  # fx raises many types on untraceable Python
            raise ModelError(
                f"cannot prune {type(model).__name__}: torch.fx cannot trace it ({type(exc).__name__}: {exc}). "
                "Structured pruning needs a model without data-dependent Python control flow."
            ) from exc
    with eval_mode(gm), torch.no_grad():
        ShapeProp(gm).propagate(example_input)
    excluded = _excluded(model, gm)
    modules = dict(gm.named_modules())
    chains = []
    for node in gm.graph.nodes:
        if node.op == "call_module" and isinstance(modules[node.target], nn.Conv2d) and node.target not in excluded:
            if modules[node.target].groups != 1:
                continue
            chain = _follow(gm, node, excluded)
            if chain is not None:
                chains.append(chain)
    return chains


def prune_channels(model: nn.Module, amount: float, example_input: torch.Tensor) -> nn.Module:
    """A copy of ``model`` with the ``amount`` fraction of lowest-L1-norm output channels of each prunable conv removed.

    Matching BatchNorm channels and the next layer's input channels go too, so parameters and FLOPs really drop.
    ``example_input`` ``(B, 3, H, W)`` is used to trace shapes. ``model`` itself is not modified; the copy keeps
    its class, its train/eval mode, and its output shape. Raises :class:`ModelError` when nothing in the model
    matches a prunable pattern (see the module docstring). Fine-tune afterwards to recover accuracy.

    >>> small = prune_channels(create_model("resnet20_cifar", 10), 0.3, torch.zeros(1, 3, 32, 32))  # doctest: +SKIP
    >>> count_parameters(small) < count_parameters(model)  # doctest: +SKIP
    True
    """
    if not isinstance(amount, int | float) or not 0.0 <= amount < 1.0:
        raise ConfigError(f"pruning amount must be a fraction in [0, 1), got {amount!r} (e.g. 0.3 removes 30%).")
    pruned = copy.deepcopy(model)
    with eval_mode(pruned), torch.no_grad():
        before = pruned(example_input).shape
    chains = find_prunable(pruned, example_input)
    if not chains:
        raise ModelError(
            f"{type(model).__name__} has no prunable conv chain (conv -> BN -> activation -> conv). Pruning "
            "handles plain conv stacks, ResNet blocks and inverted residuals without squeeze-excite; grouped "
            "convs, gated and concatenated outputs are left whole. Try a ResNet or MobileNetV2-style model."
        )
    modules = dict(pruned.named_modules())
    keep = {c.conv: _keep_indices(modules[c.conv], amount) for c in chains}  # decided before any surgery
    consumers = {c.consumer: c for c in chains}
    for name, module in modules.items():
        out_idx = keep.get(name)
        chain_in = consumers.get(name)
        in_idx = keep.get(chain_in.conv) if chain_in is not None else None
        if isinstance(module, nn.Conv2d) and (out_idx is not None or in_idx is not None):
            _prune_conv(module, out_idx, in_idx)
        elif isinstance(module, nn.Linear) and in_idx is not None and chain_in is not None:
            _prune_linear(module, in_idx, chain_in.spatial)
    for c in chains:
        if keep[c.conv] is not None:
            for norm in c.norms:
                _prune_norm(modules[norm], keep[c.conv])
            for dw in c.depthwise:
                _prune_depthwise(modules[dw], keep[c.conv])
    with eval_mode(pruned), torch.no_grad():
        after = pruned(example_input).shape
    if after != before:  # a surgery bug, not a user error: say so loudly
        raise ModelError(f"pruning changed the output shape of {type(model).__name__} from {before} to {after}.")
    return pruned
