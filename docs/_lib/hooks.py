"""MkDocs hooks for the executed tutorials.

- Puts ``docs/_lib`` on ``sys.path`` so pages can ``import imgclf_docs``.
- Gives every executed code block a name (``<page> cell <n>``) and one session per page, so a failing cell fails
  the strict build with the page and the cell named, and cells of one page share their variables.
- Tells ``imgclf_docs`` where the current page's figures go in the built site.
- After the build, checks that every figure a page printed exists and prints the time each page took.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import imgclf_docs  # noqa: E402

log = logging.getLogger("mkdocs.hooks.imgclf_docs")
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>python|py|pycon)[ \t]+"
                   r"(?P<opts>[^\n]*\bexec=\"(?:1|on|true|yes)\"[^\n]*)$", re.MULTILINE)
IMG = re.compile(r'<img src="([^"/:]+\.png)"')
_page_start: dict[str, float] = {}
_page_seconds: dict[str, float] = {}
_figures: list[Path] = []


def name_cells(markdown: str, src_uri: str) -> str:
    """Add ``id="<page> cell <n>"`` and ``session="<page>"`` to each executed block that lacks them."""
    count = 0

    def repl(m: re.Match[str]) -> str:
        nonlocal count
        count += 1
        opts = m["opts"]
        if not re.search(r"\bid=", opts):
            opts += f' id="{src_uri} cell {count}"'
        if not re.search(r"\bsession=", opts):
            opts += f' session="{src_uri}"'
        return f"{m['indent']}{m['fence']}{m['lang']} {opts}"

    return FENCE.sub(repl, markdown)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    src = page.file.src_uri
    dest = Path(page.file.dest_uri)
    imgclf_docs.PAGE.update(src=src, out_dir=Path(config.site_dir) / dest.parent, figures=0)
    _page_start[src] = time.perf_counter()
    return name_cells(markdown, src)


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    src = page.file.src_uri
    if src in _page_start:
        _page_seconds[src] = time.perf_counter() - _page_start.pop(src)
    out_dir = Path(config.site_dir) / Path(page.file.dest_uri).parent
    _figures.extend(out_dir / name for name in IMG.findall(html))
    imgclf_docs.PAGE.update(src="", out_dir=None)
    return html


def on_post_build(config: Any) -> None:
    for path in _figures:
        if not path.is_file():
            log.warning("figure %s is referenced by a page but was not written", path)
    _figures.clear()
    slow = sorted(_page_seconds.items(), key=lambda kv: -kv[1])
    total = sum(_page_seconds.values())
    log.info("executed pages took %.0f s in all (%.0f s of it in imgclf subprocesses); slowest: %s", total,
             sum(imgclf_docs.TIMINGS.values()), ", ".join(f"{k} {v:.0f} s" for k, v in slow[:8]))
