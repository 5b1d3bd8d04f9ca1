"""Fixtures for the models tests: a machine with no network and empty weight caches."""

from __future__ import annotations

import socket

import pytest


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Every socket connection fails at once and the hub/torch caches are empty: downloads cannot happen."""
    import huggingface_hub.constants as hub

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)  # no retry loop before giving up
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

