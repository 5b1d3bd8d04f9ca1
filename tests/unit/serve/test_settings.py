from __future__ import annotations

import pytest

from imgclf.errors import ConfigError
from imgclf.serve import TOKEN_ENV, ServeSettings


def test_defaults_bind_loopback_and_limits_are_checked() -> None:
    s = ServeSettings()
    assert s.host == "127.0.0.1" and s.token is None and s.max_body_bytes == 20 * 1024 * 1024
    with pytest.raises(ConfigError, match="max_batch"):
        ServeSettings(max_batch=0)
    with pytest.raises(ConfigError, match="port"):
        ServeSettings(port=70000)
    with pytest.raises(ConfigError, match="empty"):
        ServeSettings(token="  ")


def test_token_from_the_environment_unless_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    assert ServeSettings().with_env_token().token == "from-env"
    assert ServeSettings(token="flag").with_env_token().token == "flag"
    monkeypatch.delenv(TOKEN_ENV)
    assert ServeSettings().with_env_token().token is None
