"""Griffe extension: doctest examples in docstrings become ``pycon`` code blocks.

imgclf's docstrings carry short ``>>>`` examples without an "Examples:" heading (house style). Left as prose,
Markdown would read ``[('cat', 'dog', 2)]`` as a link; fenced, they render as highlighted console sessions.
"""

from __future__ import annotations

from typing import Any

import griffe


def fence_doctests(text: str) -> str:
    """Wrap each run of ``>>>`` lines and the output after them (up to a blank line) in a pycon fence."""
    out: list[str] = []
    block: list[str] = []
    indent = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not block and stripped.startswith(">>>"):
            indent = line[: len(line) - len(line.lstrip())]
            block = [line]
        elif block and stripped:
            block.append(line)
        else:
            if block:
                out += [f"{indent}```pycon", *block, f"{indent}```"]
                block = []
            out.append(line)
    if block:
        out += [f"{indent}```pycon", *block, f"{indent}```"]
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    """Fence the doctest examples of every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)
