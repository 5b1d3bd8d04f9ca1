from __future__ import annotations

from pathlib import Path

import typer

from imgclf.api import Classifier
from imgclf.cli._common import console, friendly_errors
from imgclf.workflows import federate


@friendly_errors
def federate_cmd(
    data: str = typer.Argument(..., help="Image-folder tree, CSV manifest or built-in name: its training split is "
                               "partitioned over the clients."),
    clients: int = typer.Option(10, "--clients", "-n", help="Number of simulated clients (Flower SuperNodes)."),
    rounds: int = typer.Option(5, "--rounds", "-r", help="Federated rounds."),
    partition: str = typer.Option("iid", "--partition", help="iid, or dirichlet:ALPHA for label skew (0.1: most "
                                  "clients see one or two classes)."),
    strategy: str = typer.Option("fedavg", "--strategy", help="fedavg or fedprox (Flower's strategies)."),
    local_epochs: int = typer.Option(1, "--local-epochs", help="Epochs each client trains per round."),
    mu: float = typer.Option(0.01, "--proximal-mu", help="FedProx's proximal weight."),
    dp_epsilon: float = typer.Option(None, "--dp-epsilon", help="Local DP-SGD on every client (Opacus): each "
                                     "client's privacy budget over all rounds, sample-level (one image of that "
                                     "client), not user-level (a whole client). The bundle records the largest "
                                     "epsilon spent. BatchNorm becomes GroupNorm; needs --strategy fedavg."),
    dp_delta: float = typer.Option(None, "--dp-delta", help="DP delta (default 1e-5; keep it below 1/images "
                                   "per client)."),
    dp_max_grad_norm: float = typer.Option(None, "--dp-max-grad-norm", help="Per-example gradient clip "
                                           "(default 1)."),
    model: str = typer.Option(None, "--model", "-m", help="Architecture (see `imgclf models`)."),
    batch_size: int = typer.Option(None, "--batch-size", "-b", help="Images per local batch."),
    img_size: int = typer.Option(None, "--img-size", help="Input size in pixels."),
    out: str = typer.Option(None, "--out", help="Parent folder of the run directory (default runs/)."),
    name: str = typer.Option(None, "--name", help="Run directory name."),
    seed: int = typer.Option(None, "--seed", help="Seed of the partition and of every client's training."),
    config: Path = typer.Option(None, "--config", "-c", help="YAML config (as for train)."),
    sets: list[str] = typer.Option([], "--set", "-s", help="Override any config key, as for train."),
) -> None:
    """Federated training on Flower's simulation engine: every client trains on its own images with imgclf's
    engine, only weights travel; the final global model is a normal bundle (RUN_DIR/bundle).

    Examples:

        imgclf federate mnist_folder --model lenet5 --clients 10 --rounds 5

        imgclf federate mnist_folder --model lenet5 --partition dirichlet:0.1 --strategy fedprox

        imgclf federate mnist_folder --model lenet5 --clients 5 --rounds 5 --dp-epsilon 8

    With --dp-epsilon each client trains with DP-SGD and its own privacy accountant, kept from round to round: the
    updates that leave a client are already private (also towards the server), and the global model is
    (epsilon, delta)-DP for any one training image. It does not hide whether a client took part at all.
    """
    dp = [f"train.{k}={v}" for k, v in (("dp_epsilon", dp_epsilon), ("dp_delta", dp_delta),
                                         ("dp_max_grad_norm", dp_max_grad_norm)) if v is not None]  # fmt: skip
    clf = Classifier(config, sets=[*dp, *sets], model=model, batch_size=batch_size, img_size=img_size, out=out,
                     name=name, seed=seed)  # fmt: skip
    result = federate(clf.resolved_config(data), clients=clients, rounds=rounds, partition_scheme=partition,
                      strategy=strategy, local_epochs=local_epochs, proximal_mu=mu, console=console)  # fmt: skip
    console.print(f"next: imgclf evaluate {result.bundle_dir} {data}")
