from __future__ import annotations

from pathlib import Path

import typer

from imgclf.cli._common import err_console, friendly_errors


@friendly_errors
def serve(
    model: Path = typer.Argument(..., help="A bundle directory (RUN_DIR/bundle)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; 0.0.0.0 exposes it to the network."),
    port: int = typer.Option(8000, "--port", "-p", help="TCP port."),
    token: str = typer.Option(None, "--token", help="Bearer token required on every route but /healthz and "
                              "/readyz (default: $IMGCLF_TOKEN; none: open).", show_default=False),
    max_batch: int = typer.Option(16, "--max-batch", help="Most images per inference batch."),
    max_wait_ms: float = typer.Option(5.0, "--max-wait-ms", help="Longest an image waits for a batch to fill."),
    max_body_mb: float = typer.Option(20.0, "--max-body-mb", help="Larger request bodies get 413 unparsed."),
    max_megapixels: float = typer.Option(40.0, "--max-megapixels", help="Larger images (width x height) get 413."),
    max_request_megapixels: float = typer.Option(100.0, "--max-request-megapixels", help="Pixel budget of one "
                                                 "request, all its images together (413 beyond, before decoding)."),
    formats: str = typer.Option("JPEG,PNG,WEBP,BMP,GIF,TIFF", "--formats", help="Image formats accepted "
                                "(comma-separated Pillow names); others get 415 unparsed."),
    body_timeout: float = typer.Option(30.0, "--body-timeout", help="Seconds for a whole request body to "
                                       "arrive (408 beyond)."),
    max_connections: int = typer.Option(64, "--max-connections", help="Concurrent connections (503 beyond)."),
    allowed_host: list[str] = typer.Option([], "--allowed-host", help="A Host name to accept besides 127.0.0.1, "
                                           "localhost, [::1] and --host (repeatable; '*' for any)."),
    cors_origin: list[str] = typer.Option([], "--cors-origin", help="A browser origin allowed to call the API, "
                                          "e.g. https://app.example.com (repeatable; default: none)."),
    drain_delay: float = typer.Option(0.0, "--drain-delay", help="On SIGTERM, seconds of /readyz 503 while "
                                      "still serving, before the listener closes."),
    queue_size: int = typer.Option(256, "--queue-size", help="Images waiting for inference before 429."),
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds before a request gets 504."),
    top_k: int = typer.Option(5, "--top-k", "-k", help="Classes returned per image."),
    engine: str = typer.Option("torch", "--engine", help="torch, torch-fast or onnxruntime (needs the bundle's "
                               "model.onnx from `imgclf export`)."),
    no_reject: bool = typer.Option(False, "--no-reject", help="Never answer unknown (ignore the bundle's "
                                   "rejection threshold)."),
    adapt: str = typer.Option(None, "--adapt", help="Test-time adaptation on a copy of the model (opt-in): bn or "
                              "tent, learning from each batch of requests; the bundle is never changed."),
    tta: str = typer.Option(None, "--tta", help="Test-time augmentation: flip, flip+crop or flip+shift; averages "
                            "probabilities over the views (the original included), as predict --tta does; each "
                            "answer carries its uncertainty."),
    mc_dropout: int = typer.Option(0, "--mc-dropout", help="MC dropout: average T stochastic passes with only the "
                                   "dropout layers on (the model must have dropout); answers carry the uncertainty."),
    log: Path = typer.Option(None, "--log", help="Append every prediction to this JSONL audit log."),
    log_images: bool = typer.Option(False, "--log-images", help="Also store each image (base64) in the log."),
    log_max_mb: float = typer.Option(50.0, "--log-max-mb", help="Rotate the log at this size."),
    drift_window: int = typer.Option(200, "--drift-window", help="Predictions per drift window on /metrics."),
) -> None:
    """Serve a bundle over HTTP: a REST API, a web page, Prometheus metrics.

    Open http://127.0.0.1:8000/ for the page. The API: POST /v1/predict (multipart files or JSON
    {"images": [base64, ...]}), POST /v1/explain (one image), GET /v1/model, /healthz, /readyz, /metrics.
    Only Host names of this machine are answered and no other browser origin (see --allowed-host,
    --cors-origin). Stop with Ctrl-C or SIGTERM: /readyz turns 503, then accepted requests are finished.

    Examples:

        imgclf serve runs/x/bundle

        imgclf serve runs/x/bundle --port 8080 --token s3cret --log audit.jsonl

        imgclf serve runs/x/bundle --tta flip --mc-dropout 10

        curl -F file=@cat.jpg http://127.0.0.1:8000/v1/predict
    """
    from imgclf.serve import ServeSettings, run_server

    settings = ServeSettings(
        host=host, port=port, token=token, max_batch=max_batch, max_wait_ms=max_wait_ms, max_body_mb=max_body_mb,
        max_pixels=int(max_megapixels * 1_000_000), max_request_pixels=int(max_request_megapixels * 1_000_000),
        formats=tuple(f for f in formats.split(",") if f.strip()), body_timeout_s=body_timeout,
        max_connections=max_connections, allowed_hosts=tuple(allowed_host), cors_origins=tuple(cors_origin),
        drain_delay_s=drain_delay, queue_size=queue_size, timeout_s=timeout, top_k=top_k,
        reject=not no_reject, engine=engine, adapt=adapt, tta=tta, mc_dropout=mc_dropout, log=log,
        log_images=log_images, log_max_mb=log_max_mb,
        drift_window=drift_window,
    ).with_env_token()  # fmt: skip
    if host not in ("127.0.0.1", "localhost", "::1") and not settings.token:
        err_console.print(f"warning: serving on {host} without a token; anyone who can reach it can use it")
    run_server(model, settings)
