from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer
from rich.console import Console

from imgclf.errors import ImgclfError

F = TypeVar("F", bound=Callable[..., Any])

console = Console()
err_console = Console(stderr=True)
DEBUG = {"on": False}


def friendly_errors(fn: F) -> F:
    """Turn ImgclfError into one red line and its exit code (2 for usage/data, 1 for runtime); --debug shows all."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ImgclfError as exc:
            if DEBUG["on"]:
                raise
            err_console.print(f"[bold red]error:[/bold red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def is_tty() -> bool:
    return sys.stdout.isatty()


def parse_fraction(text: str, option: str) -> float:
    """'8/255' or '0.03' -> float; anything else is a usage error naming ``option``."""
    num, _, den = text.partition("/")
    try:
        return float(num) / float(den) if den else float(num)
    except (ValueError, ZeroDivisionError) as exc:
        raise typer.BadParameter(f"{option} {text!r} is not a number or a fraction like 8/255") from exc
