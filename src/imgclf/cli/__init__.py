"""The ``imgclf`` command line: thin verbs over the library (parse, build a config, call one function, print)."""

from imgclf.cli._app import app, main

__all__ = ["app", "main"]
