"""``federate``: federated training on Flower's simulation engine, each client running imgclf's training engine.

The training split is partitioned over ``clients`` (IID, or label-skewed by a Dirichlet(alpha) draw per class); each
round Flower's strategy (FedAvg or FedProx) sends the global weights to every client, each trains ``local_epochs``
on its own images with :class:`imgclf.engine.Trainer`, and the strategy averages the returned weights by image
count. The server evaluates the global model on the validation split after each round (centralised evaluation,
for the log only: the clients' images never leave them). The final global model becomes an ordinary bundle.

BatchNorm: its running mean and variance are averaged with the weights, by image count, like every other entry of
the state dict (``num_batches_tracked`` is summed back to an integer). With IID clients that is the pooled estimate;
with skewed clients it is the statistics of the mixture, which is what the global model sees at test time. Keeping
them local (FedBN) would leave the global bundle without statistics, so imgclf does not.

Differential privacy (``--dp-epsilon``): local DP-SGD on every client, through imgclf's Opacus path
(:func:`imgclf.privacy.make_private`), not Flower's DP wrappers. Each client picks one noise multiplier that spends
its budget over all its rounds (:func:`imgclf.privacy.noise_for_budget`), keeps its own RDP accountant in its
Flower node state from round to round (within a round of several local epochs it stops before one that would pass
the target). Epsilon is therefore
sample-level, per client: whatever one image changes, each client's sequence of updates (and so the global model,
which only averages them, the clients' images being disjoint) moves by at most (epsilon, delta), and this holds
against the server too, which only ever sees private updates. It is not user-level DP: it does not hide whether a
whole client took part (Flower's central DP wrappers clip and noise whole updates for that, but report no
epsilon). The bundle records the largest epsilon any client spent. BatchNorm becomes GroupNorm, as in central DP.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from torch import nn

from imgclf import data as D
from imgclf import engine as E
from imgclf import privacy as P
from imgclf.bundle import BundleMeta, save_bundle
from imgclf.config import RunConfig, resolve_auto, to_dict
from imgclf.errors import ConfigError
from imgclf.models import create_model, model_data_config, split_parameters
from imgclf.optim import build_optimizer, build_scheduler
from imgclf.tasks import make_task
from imgclf.utils import atomic_write_text, optional_import, seed_everything


@dataclass(frozen=True)
class FederateResult:
    """The run directory, the bundle of the final global model, its test metrics and the per-round log."""

    run_dir: Path
    bundle_dir: Path
    metrics: dict[str, Any]
    rounds: list[dict[str, float]]
    client_sizes: list[int]

    def to_dict(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), "bundle_dir": str(self.bundle_dir), "metrics": self.metrics,
                "rounds": self.rounds, "client_sizes": self.client_sizes}  # fmt: skip


def partition(labels: list[int] | np.ndarray, clients: int, scheme: str = "iid", *, seed: int = 0) -> list[np.ndarray]:
    """Indices of each client's images: ``iid`` (a shuffled equal split) or ``dirichlet:ALPHA`` (each class spread
    over the clients in proportions drawn from Dirichlet(ALPHA): small ALPHA, few classes per client).

    >>> [len(p) for p in partition([0, 1] * 10, 4)]
    [5, 5, 5, 5]
    >>> sum(len(p) for p in partition([0, 1] * 50, 3, "dirichlet:0.1"))
    100
    """
    y = np.asarray(labels)
    if clients < 1 or clients > len(y):
        raise ConfigError(f"--clients {clients} must be between 1 and the {len(y)} training images")
    rng = np.random.default_rng(seed)
    if scheme == "iid":
        return [np.sort(p) for p in np.array_split(rng.permutation(len(y)), clients)]
    if not scheme.startswith("dirichlet:"):
        raise ConfigError(f"--partition {scheme!r} is not valid; use iid or dirichlet:ALPHA (e.g. dirichlet:0.5)")
    try:
        alpha = float(scheme.split(":", 1)[1])
    except ValueError:
        alpha = -1.0
    if not alpha > 0:
        raise ConfigError(f"--partition {scheme!r}: ALPHA must be a number > 0, e.g. dirichlet:0.1")
    for _ in range(100):  # redraw until every client has an image
        parts: list[list[int]] = [[] for _ in range(clients)]
        for c in np.unique(y):
            idx = rng.permutation(np.flatnonzero(y == c))
            cuts = (np.cumsum(rng.dirichlet([alpha] * clients))[:-1] * len(idx)).astype(int)
            for k, chunk in enumerate(np.split(idx, cuts)):
                parts[k] += chunk.tolist()
        if all(parts):
            return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    raise ConfigError(f"--partition {scheme}: a client got no image in 100 draws; use fewer clients or a larger ALPHA")


class _Proximal(nn.Module):
    """FedProx's local objective: the task loss plus ``mu / 2 * ||w - w_global||^2``."""

    def __init__(self, loss: nn.Module, model: nn.Module, mu: float) -> None:
        super().__init__()
        self.loss, self.mu, self.model = loss, mu, [model]  # a list: not registered as a submodule
        self.anchor = [p.detach().clone() for p in model.parameters()]

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        prox = sum(((p - a) ** 2).sum() for p, a in zip(self.model[0].parameters(), self.anchor))
        return self.loss(logits, targets) + 0.5 * self.mu * prox


def local_train(model: nn.Module, samples: D.SampleList, cfg: RunConfig, pre: Any, *, classes: list[str], epochs: int,
                seed: int, mu: float = 0.0, rounds: int = 1, dp_history: list | None = None,
                ) -> tuple[dict[str, torch.Tensor], int, float, dict[str, Any] | None]:  # fmt: skip
    """Train ``model`` on ``samples`` for ``epochs`` with imgclf's engine (the run's optimizer, loss and
    augmentation, a constant learning rate); return its state dict, the image count, the last training loss and,
    under ``cfg.train.dp_epsilon``, the client's privacy summary (its accountant ``history`` continues
    ``dp_history``; the noise is chosen for ``rounds`` rounds of ``epochs`` on these images)."""
    task = make_task("single", classes)
    sampler = D.ResumableSampler(samples.labels, seed=seed)
    tf = D.build_train_transform(pre, cfg.data.augment, hflip=cfg.data.augment != "none")
    loader = D.make_loader(D.IndexedDataset(samples, tf), sampler, cfg.data.batch_size, workers=0)
    backbone, head = split_parameters(model)
    optimizer = build_optimizer(backbone, head, cfg.optim, batch_size=cfg.data.batch_size)
    constant = replace(cfg.optim, schedule="constant", warmup_epochs=0.0)
    scheduler = build_scheduler(optimizer, constant, max(1, len(loader)), epochs)
    loss = task.build_loss(cfg.train, np.asarray(samples.labels))
    if mu > 0:
        loss = _Proximal(loss, model, mu)
    state = E.TrainState(model=model, raw_model=model, optimizer=optimizer, scheduler=scheduler, loss_fn=loss,
                         train_loader=loader, sampler=sampler, val_loader=None, epochs=epochs,
                         batch_size=cfg.data.batch_size, device=torch.device("cpu"), task=task)  # fmt: skip
    callbacks: list[E.Callback] = []
    dp = None
    if cfg.train.dp_epsilon:
        sigma = P.noise_for_budget(cfg.train.dp_epsilon, cfg.train.dp_delta, 1 / len(loader),
                                   rounds * epochs * len(loader))  # fmt: skip
        local_cfg = replace(cfg, train=replace(cfg.train, seed=seed))  # fresh noise every round and client
        dp = P.make_private(state, local_cfg, noise_multiplier=sigma, history=dp_history)
        callbacks.append(dp)
    E.Trainer(state, callbacks).fit()
    last = state.history[-1]["train_loss"] if state.history else math.nan
    privacy = None
    if dp is not None:
        privacy = {**dp.summary(), "history": [list(h) for h in dp.accountant.history]}
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}, len(samples), float(last), privacy


def federate(cfg: RunConfig, *, clients: int, rounds: int, partition_scheme: str = "iid", strategy: str = "fedavg",
             local_epochs: int = 1, proximal_mu: float = 0.01,
             console: Console | None = None) -> FederateResult:  # fmt: skip
    """Federated training of ``cfg`` (its data, model, optimizer, batch size, augmentation) on Flower's simulation
    engine; writes ``RUN_DIR/bundle`` (the final global model) and ``RUN_DIR/federated.json`` (the round log).

    >>> # federate(load_config(None, {"data": {"source": "mnist"}, "model": {"name": "lenet5"}}), clients=10, rounds=5)
    """
    console = console or Console()
    if strategy not in ("fedavg", "fedprox"):
        raise ConfigError(f"--strategy {strategy!r} is not valid; choose fedavg or fedprox")
    if cfg.train.dp_epsilon and strategy == "fedprox":
        raise ConfigError("--dp-epsilon does not combine with --strategy fedprox: Opacus clips and noises only "
                          "the task loss's per-example gradients, so the proximal term would be lost. Use fedavg")
    if cfg.train.dp_epsilon:
        cfg = P.resolve_dp_auto(cfg)
        P.check_dp_config(cfg)
    flwr_app = optional_import("flwr.app", "federated")
    flwr_client = optional_import("flwr.clientapp", "federated")
    flwr_server = optional_import("flwr.serverapp", "federated")
    strategies = optional_import("flwr.serverapp.strategy", "federated")
    simulation = optional_import("flwr.simulation", "federated")
    seed_everything(cfg.train.seed)
    splits = D.load_source(cfg.data.source, val_fraction=cfg.data.val_fraction, test_fraction=cfg.data.test_fraction,
                           seed=cfg.train.seed, max_per_class=cfg.data.max_per_class)  # fmt: skip
    classes = list(splits.classes)
    model = create_model(cfg.model.name, len(classes), drop_rate=cfg.model.drop_rate)
    replaced: list[str] = []
    if cfg.train.dp_epsilon:
        model, replaced = P.dp_compatible_model(model, console)
    pre = model_data_config(model)
    if cfg.data.img_size:
        pre = pre.with_size(cfg.data.img_size, cfg.data.crop_pct)
    cfg = replace(cfg, data=replace(cfg.data, img_size=pre.input_size))
    per_client = math.ceil(len(splits.train) / clients)
    cfg = resolve_auto(cfg, train_size=per_client, num_classes=len(classes))
    parts = partition(splits.train.labels, clients, partition_scheme, seed=cfg.train.seed)
    client_data = [splits.train.subset(p.tolist()) for p in parts]
    run_dir = Path(cfg.train.out) / (cfg.train.name or f"federated-{cfg.model.name}-{clients}x{rounds}")
    if run_dir.exists():
        raise ConfigError(f"{run_dir} already exists; pass --name for a new run directory")
    run_dir.mkdir(parents=True)
    dp_note = f", local DP-SGD at epsilon {cfg.train.dp_epsilon} per client" if cfg.train.dp_epsilon else ""
    console.print(f"federate: {clients} clients ({partition_scheme}; {min(map(len, parts))}-{max(map(len, parts))} "
                  f"images each), {rounds} rounds of {local_epochs} local epoch(s), {strategy}{dp_note}")  # fmt: skip
    mu = proximal_mu if strategy == "fedprox" else 0.0
    arch = (cfg.model.name, len(classes), cfg.model.drop_rate)

    client_app = flwr_client.ClientApp()

    @client_app.train()
    def _train(msg: Any, context: Any) -> Any:
        cid = int(context.node_config["partition-id"])
        local = create_model(arch[0], arch[1], drop_rate=arch[2])
        if cfg.train.dp_epsilon:
            local = P.dp_compatible_model(local)[0]
        local.load_state_dict(msg.content["arrays"].to_torch_state_dict())
        rnd = int(msg.content["config"]["server-round"])
        history = _load_history(context.state)
        state, n, loss, privacy = local_train(local, client_data[cid], cfg, pre, classes=classes,
                                              epochs=local_epochs, seed=cfg.train.seed + 1000 * rnd + cid, mu=mu,
                                              rounds=rounds, dp_history=history)  # fmt: skip
        metrics: dict[str, Any] = {"num-examples": n, "train_loss": loss}
        if privacy is not None:  # the accountant stays with the client (its node state) for the next round
            context.state["dp"] = flwr_app.ConfigRecord({k: [float(h[i]) for h in privacy["history"]]
                                                         for i, k in enumerate(("sigma", "rate", "steps"))})
            metrics.update({"epsilon": privacy["epsilon"], "noise_multiplier": privacy["noise_multiplier"],
                            "sample_rate": privacy["sample_rate"], "steps": privacy["steps"]})  # fmt: skip
        content = flwr_app.RecordDict({"arrays": flwr_app.ArrayRecord(state),
                                       "metrics": flwr_app.MetricRecord(metrics)})
        return flwr_app.Message(content=content, reply_to=msg)

    history: list[dict[str, float]] = []
    final: dict[str, Any] = {}
    spent: list[list[dict[str, float]]] = []  # per round: each client's privacy metrics
    val = splits.val if splits.val is not None and len(splits.val) else None

    def _evaluate(server_round: int, arrays: Any) -> Any:
        model.load_state_dict(_as_state(arrays.to_torch_state_dict(), model))
        row: dict[str, float] = {"round": server_round}
        if val is not None:
            out = E.run_inference(model.eval(), val, pre, batch_size=cfg.data.batch_size, workers=0)
            row["val_acc"] = float((out.logits.argmax(1) == out.labels).mean())
        history.append(row)
        if server_round:
            console.print(f"round {server_round}/{rounds}  " + "  ".join(f"{k} {v:.4f}" for k, v in row.items()
                                                                         if k != "round"))  # fmt: skip
        return flwr_app.MetricRecord({k: v for k, v in row.items() if k != "round"})

    server_app = flwr_server.ServerApp()

    @server_app.main()
    def _main(grid: Any, context: Any) -> None:
        kind = strategies.FedProx if mu > 0 else strategies.FedAvg
        kw: dict[str, Any] = {"proximal_mu": mu} if mu > 0 else {}
        if cfg.train.dp_epsilon:
            def _train_metrics(replies: list[Any], weight_key: str) -> Any:
                spent.append([{k: float(r["metrics"][k]) for k in ("epsilon", "noise_multiplier", "sample_rate",
                                                                   "steps", "num-examples")} for r in replies])
                return aggregate(replies, weight_key)

            aggregate = optional_import("flwr.serverapp.strategy.strategy_utils", "federated").aggregate_metricrecords
            kw["train_metrics_aggr_fn"] = _train_metrics
        strat = kind(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=clients,
                     min_available_nodes=clients, **kw)  # fmt: skip
        result = strat.start(grid=grid, initial_arrays=flwr_app.ArrayRecord(model.state_dict()), num_rounds=rounds,
                             evaluate_fn=_evaluate)  # fmt: skip
        final["state"] = result.arrays.to_torch_state_dict()

    logging.getLogger("flwr").setLevel(logging.WARNING)
    simulation.run_simulation(server_app=server_app, client_app=client_app, num_supernodes=clients,
                              backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                                              "init_args": {"logging_level": logging.WARNING,
                                                            "log_to_driver": False}})  # fmt: skip
    if "state" not in final:
        raise ConfigError("the Flower simulation ended without a global model; run again with --debug for its log")
    model.load_state_dict(_as_state(final["state"], model))
    privacy = _privacy_summary(cfg, spent, replaced) if cfg.train.dp_epsilon else None
    return _save(model.eval(), cfg, splits, pre, run_dir, history, parts, partition_scheme, strategy, clients,
                 rounds, local_epochs, mu, console, privacy)  # fmt: skip


def _load_history(state: Any) -> list[tuple[float, float, int]] | None:
    """A client's accountant history from its Flower node state (None in the first round)."""
    if "dp" not in state:
        return None
    rec = state["dp"]
    return [(float(s), float(q), int(n)) for s, q, n in zip(rec["sigma"], rec["rate"], rec["steps"])]


def _privacy_summary(cfg: RunConfig, spent: list[list[dict[str, float]]], replaced: list[str]) -> dict[str, Any]:
    """What the bundle and model card record of local DP: the largest epsilon any client spent, and each one's."""
    if not spent:
        raise ConfigError("the federated run reported no client's privacy accounting; run again with --debug")
    last = spent[-1]  # every client trains every round (fraction_train=1): the last round holds the totals
    worst = max(last, key=lambda c: c["epsilon"])
    return {
        "epsilon": round(worst["epsilon"], 4), "delta": cfg.train.dp_delta, "steps": int(worst["steps"]),
        "noise_multiplier": worst["noise_multiplier"], "sample_rate": worst["sample_rate"],
        "target_epsilon": cfg.train.dp_epsilon, "max_grad_norm": cfg.train.dp_max_grad_norm,
        "accountant": P.ACCOUNTANT, "scope": "sample-level, per client (local DP-SGD on each client)",
        "clients": [{k: int(v) if k in ("steps", "num-examples") else round(v, 4) if k == "epsilon" else v
                     for k, v in c.items()} for c in last],
        "epsilon_per_round": [round(max(c["epsilon"] for c in r), 4) for r in spent], "replaced_layers": replaced,
        "library": f"opacus {optional_import('opacus', 'privacy').__version__}",
    }  # fmt: skip


def _as_state(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """An averaged state dict with each entry back in the model's dtype (BatchNorm's counters are integers)."""
    own = model.state_dict()
    return {k: v.to(own[k].dtype) if v.dtype != own[k].dtype else v for k, v in state.items()}


def _save(model: nn.Module, cfg: RunConfig, splits: D.Splits, pre: Any, run_dir: Path, history: list,
          parts: list[np.ndarray], scheme: str, strategy: str, clients: int, rounds: int, local_epochs: int,
          mu: float, console: Console, privacy: dict[str, Any] | None = None) -> FederateResult:  # fmt: skip
    task = make_task("single", splits.classes)
    metrics: dict[str, Any] = {"rounds": rounds}
    for name, samples in (("val", splits.val), ("test", splits.test)):
        if samples is not None and len(samples):
            out = E.run_inference(model, samples, pre, batch_size=cfg.data.batch_size, workers=0)
            metrics[name] = task.summary(task.probabilities(out.logits, None), out.labels)
    extra = {"federated": {"framework": f"flwr {optional_import('flwr', 'federated').__version__}",
                           "clients": clients, "rounds": rounds, "local_epochs": local_epochs, "partition": scheme,
                           "strategy": strategy, "proximal_mu": mu, "client_sizes": [len(p) for p in parts],
                           "batchnorm": "replaced by GroupNorm (DP-SGD)" if privacy else "running statistics averaged",
                           "history": history}}  # fmt: skip
    if privacy is not None:
        extra["privacy"] = privacy  # where a centrally trained DP bundle keeps it: the card shows it the same way
        extra["federated"]["privacy"] = {"epsilon": privacy["epsilon"], "scope": privacy["scope"]}
        if privacy["replaced_layers"]:
            extra["norm"] = "groupnorm"
    meta = BundleMeta(architecture=cfg.model.name, classes=tuple(splits.classes), preprocessing=pre,
                      arch_args={"drop_rate": cfg.model.drop_rate}, task=task.to_dict(), training=to_dict(cfg),
                      metrics=metrics, data=splits.info, extra=extra)  # fmt: skip
    bundle_dir = save_bundle(run_dir / "bundle", model, meta)
    result = FederateResult(run_dir, bundle_dir, metrics, history, [len(p) for p in parts])
    atomic_write_text(run_dir / "federated.json", json.dumps(result.to_dict(), indent=2) + "\n")
    test = metrics.get("test") or metrics.get("val") or {}
    dp = f"  epsilon {privacy['epsilon']} (delta {privacy['delta']}, per client)" if privacy else ""
    console.print(f"[green]done[/green]: test acc {test.get('acc', float('nan')):.4f}{dp}  bundle: {bundle_dir}")
    return result
