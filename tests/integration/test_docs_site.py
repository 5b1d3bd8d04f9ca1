"""The documentation site: executed cells are named in build failures, the CLI reference covers every verb, and
the built site works in Chromium (learning path, a tutorial's figure, search, dark mode) with no request leaving
127.0.0.1.

The browser test builds a reduced site (home, learning path, one tutorial that needs no training) into a temporary
folder, or uses a full build when ``IMGCLF_DOCS_SITE`` names one (e.g. ``IMGCLF_DOCS_SITE=site`` after
``make docs``).
"""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / "docs" / "_lib"
CHROMIUM = Path("/usr/bin/chromium")
pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")


def _lib(name: str):
    sys.path.insert(0, str(LIB))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(LIB))


def _mkdocs(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": os.pathsep.join([str(ROOT / "src"),
                                                                                  os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--config-file", str(config), *args],
                          capture_output=True, text=True, env=env, timeout=900)


def _config(tmp: Path, docs: Path, nav: list[str], **extra: str) -> Path:
    lines = [f"INHERIT: {ROOT / 'mkdocs.yml'}", f"docs_dir: {docs}", f"site_dir: {tmp / 'site'}",
             f"hooks: [{LIB / 'hooks.py'}]", "nav:", *[f"  - {p}" for p in nav]]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    path = tmp / "mkdocs.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_executed_cells_are_named_and_share_one_session_per_page():
    hooks = _lib("hooks")
    page = '```python exec="1"\nx = 1\n```\n\n```python\nnot run\n```\n\n```python exec="on" id="mine"\nprint(x)\n```\n'
    named = hooks.name_cells(page, "tutorials/a.md")
    assert 'exec="1" id="tutorials/a.md cell 1" session="tutorials/a.md"' in named
    assert 'id="mine" session="tutorials/a.md"' in named  # an id the author chose is kept
    assert "```python\nnot run" in named  # blocks that do not execute are left alone


def test_doctest_examples_in_docstrings_become_code_blocks():
    fence = _lib("griffe_doctest").fence_doctests
    doc = "Summary.\n\n>>> pairs(x)\n[('cat', 'dog', 2)]\n\nMore text."
    assert fence(doc) == "Summary.\n\n```pycon\n>>> pairs(x)\n[('cat', 'dog', 2)]\n```\n\nMore text."


def test_cli_reference_documents_every_verb_and_option():
    import typer

    from imgclf.cli import app

    md = _lib("imgclf_docs").cli_reference()
    commands = typer.main.get_command(app).commands
    for name, cmd in commands.items():
        assert f"## imgclf {name}\n" in md, f"the CLI reference misses `imgclf {name}`"
        for p in cmd.params:
            if p.param_type_name == "option" and p.name != "help":
                assert f"`{p.opts[0]}`" in md, f"the CLI reference misses {p.opts[0]} of `imgclf {name}`"


@pytest.mark.slow
def test_a_failing_tutorial_cell_fails_the_build_naming_page_and_cell(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n")
    (docs / "broken.md").write_text('# Broken\n\n```python exec="1"\nx = 1\n```\n\n'
                                    '```python exec="1"\nraise ValueError("the data moved")\n```\n')
    proc = _mkdocs(_config(tmp_path, docs, ["index.md", "broken.md"], strict="true"))
    assert proc.returncode != 0, "a failing cell must fail the strict build"
    assert "'broken.md cell 2'" in proc.stderr and "the data moved" in proc.stderr, proc.stderr[-3000:]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    given = os.environ.get("IMGCLF_DOCS_SITE")
    if given:
        path = Path(given).resolve()
        assert (path / "index.html").is_file(), f"IMGCLF_DOCS_SITE={given} holds no built site (run make docs)"
        return path
    tmp = tmp_path_factory.mktemp("docs")
    tutorial = "tutorials/training/augmentation.md"  # executes imgclf's transforms; needs no training
    nav = ["index.md", "learning-path.md", tutorial]
    only = f'"_lib/\\nreference/\\ntutorials/*/*.md\\n!{tutorial}\\n"'  # every other page is left out
    proc = _mkdocs(_config(tmp, ROOT / "docs", nav, strict="false", exclude_docs=only))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp / "site"


@pytest.fixture(scope="module")
def served(site: Path):
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_site_in_chromium_learning_path_figure_search_offline(served: str):
    from playwright.sync_api import sync_playwright

    outside: list[str] = []

    def route(r):
        host = urlparse(r.request.url).hostname
        if r.request.url.startswith("data:") or host == "127.0.0.1":
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            context = browser.new_context()
            context.route("**/*", route)
            context.on("request", lambda req: None if urlparse(req.url).hostname in ("127.0.0.1", None)
                       or req.url.startswith("data:") else outside.append(req.url))
            page = context.new_page()

            # The learning path: sections in the order of the field, tutorials linked, planned pages not linked.
            page.goto(f"{served}/learning-path/", wait_until="networkidle")
            sections = page.locator("article h2").all_inner_texts()
            order = ["History", "Problem types", "Foundations", "Architectures", "Training", "Evaluation",
                     "Robustness", "Explainability", "Deployment", "MLOps", "Frontiers"]
            found = [next(i for i, s in enumerate(sections) if name in s) for name in order]
            assert found == sorted(found), f"learning-path sections out of order: {sections}"
            link = page.locator("article a", has_text="Augmentation gallery")
            assert link.count() == 1
            coming = page.locator("article li", has_text="coming")  # planned pages: their titles are not links
            assert all(coming.nth(i).locator("a strong").count() == 0 for i in range(coming.count()))
            assert page.locator("article li a strong", has_text="Multi-label").count() == 1  # a landed page is

            # A tutorial's figure: produced during the build, loaded by the browser.
            link.click()
            page.wait_for_load_state("networkidle")
            assert page.locator("h1").inner_text().startswith("Augmentation gallery")
            imgs = page.locator("article figure img")
            assert imgs.count() >= 1, "the tutorial shows no figure"
            widths = imgs.evaluate_all("els => els.map(e => e.complete ? e.naturalWidth : 0)")
            assert all(w > 0 for w in widths), f"a figure did not load: naturalWidth {widths}"
            assert page.locator("h2", has_text="Check yourself").count() == 1
            assert page.locator("details.question").count() == 3

            # Search: the local index answers, and the result leads to the tutorial.
            page.goto(f"{served}/", wait_until="networkidle")
            page.locator("label.md-search__icon, .md-search__input").first.click()
            page.locator("input.md-search__input").press_sequentially("augmentation", delay=30)
            results = page.locator(".md-search-result__item")
            results.first.wait_for(timeout=30_000)
            assert "augmentation" in results.first.locator("a").first.get_attribute("href")

            # Dark mode: the palette toggle switches the colour scheme.
            page.keyboard.press("Escape")
            before = page.locator("body").get_attribute("data-md-color-scheme")
            page.locator("form[data-md-component=palette] label:visible").first.click()
            after = page.locator("body").get_attribute("data-md-color-scheme")
            assert {before, after} == {"default", "slate"}, (before, after)
        finally:
            browser.close()
    assert not outside, f"requests left the machine: {outside[:5]}"
