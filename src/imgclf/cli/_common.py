from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer
from rich.console import Console

from imgclf.errors import ImgclfError

F = TypeVar("F", bound=Callable[..., Any])

PIPED_WIDTH = 10_000  # output read by a program or a file: lines and tables are never cut to 80 columns


def _width(stream: Any) -> int | None:
    """None on a terminal or with COLUMNS set (rich measures or reads it); a width that never cuts when piped."""
    return None if stream.isatty() or os.environ.get("COLUMNS") else PIPED_WIDTH


console = Console(width=_width(sys.stdout))
err_console = Console(stderr=True, width=_width(sys.stderr))
DEBUG = {"on": False}


def brief_warnings() -> None:
    """Show each distinct warning once, as one ``warning: ...`` line on stderr, not Python's two lines with the
    file and source line of the code that issued it (``--debug`` keeps Python's form)."""
    shown: set[str] = set()

    def show(message: Warning | str, *_: Any, **__: Any) -> None:
        text = str(message)
        if text not in shown:
            shown.add(text)
            err_console.print(f"[yellow]warning:[/yellow] {text}", highlight=False, soft_wrap=True, markup=True)

    warnings.showwarning = show


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


def heading(out: Console, text: str) -> None:
    """A bold section line (not a full-width rule: piped output has no width to fill)."""
    out.print(f"[bold]── {text} ──[/bold]", highlight=False)


def short_path(path: str, width: int) -> str:
    """``path`` cut from the left to at most ``width`` characters, keeping the file name: ``…/cats/017.png``.

    >>> short_path("/data/pets/train/cats/017.png", 16)
    '…/cats/017.png'
    """
    if len(path) <= width:
        return path
    tail = path[len(path) - max(1, width - 1) :]
    cut = tail.find("/")
    return "…" + (tail[cut:] if 0 <= cut < len(tail) - 1 and len(tail) - cut >= 8 else tail)


def is_tty() -> bool:
    return sys.stdout.isatty()


def parse_fraction(text: str, option: str) -> float:
    """'8/255' or '0.03' -> float; anything else is a usage error naming ``option``."""
    num, _, den = text.partition("/")
    try:
        return float(num) / float(den) if den else float(num)
    except (ValueError, ZeroDivisionError) as exc:
        raise typer.BadParameter(f"{option} {text!r} is not a number or a fraction like 8/255") from exc
