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


def test_new_limits_and_allow_lists_are_validated() -> None:
    s = ServeSettings(host="::", allowed_hosts=(" Models.Internal ",), formats=("jpg", "png"))
    assert s.formats == ("JPEG", "PNG") and s.hosts >= {"127.0.0.1", "localhost", "[::1]", "[::]", "models.internal"}
    for bad in ({"formats": ("HEIC",)}, {"cors_origins": ("app.example",)}, {"body_timeout_s": float("nan")},
                {"max_request_pixels": 0}, {"max_connections": 0}, {"drain_delay_s": -1.0}):  # fmt: skip
        with pytest.raises(ConfigError):
            ServeSettings(**bad)
    assert ServeSettings(cors_origins=("https://App.example/",)).cors_origins == ("https://app.example",)


def test_a_pixel_limit_pillow_cannot_honour_is_refused_at_start() -> None:
    with pytest.raises(ConfigError, match="--max-megapixels 500 is above Pillow's decompression-bomb limit"):
        ServeSettings(max_pixels=500_000_000)
    assert ServeSettings(max_pixels=150_000_000).max_pixels == 150_000_000
