"""Shared by the integration tests: the CLI in a subprocess, and a real `imgclf serve` process on loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from imgclf.engine import Callback


def cli(*args: str, cwd: Path | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """``python -m imgclf ARGS`` as a user runs it (offline hub, a wide terminal for tables)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "220"}
    return subprocess.run([sys.executable, "-m", "imgclf", *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=timeout)  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def cli_server(bundle: Path, *args: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """``python -m imgclf serve BUNDLE --port P ARGS`` on loopback, yielded once /readyz answers 200."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "imgclf", "serve", str(bundle), "--port", str(port), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server exited early:\n{proc.stdout.read().decode()}")
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("server not ready within 180 s")
            time.sleep(0.2)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class StopAt(Callback):
    """Interrupts a run after optimizer step ``step``, as Ctrl-C / SIGTERM do: it saves a checkpoint and raises
    TrainingInterrupted, ready for ``--resume``."""

    name = "stop_at"

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, state, stats) -> None:
        if state.step == self.step:
            state.interrupted = True
