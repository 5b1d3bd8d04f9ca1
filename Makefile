# Two commands set everything up: `make demo` and `make test`. Both create .venv when it is missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

# The browser tests drive Debian's Chromium at this path (tests/conftest.py reads IMGCLF_CHROMIUM too).
CHROMIUM ?= /usr/bin/chromium
export IMGCLF_CHROMIUM := $(CHROMIUM)

.PHONY: demo doctest test test-all test-federated test-fast lint bench clean chromium docs docs-serve

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/imgclf demo

# `make test` runs the browser tests too, so it needs Chromium: installed here when running as root (as .ci/run
# does), otherwise the run stops at once with the one command to run.
chromium:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	        echo "make test: installing Debian's chromium for the browser tests (apt-get install -y chromium)"; \
	        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	            || { echo "make test: could not install chromium; run: apt-get install -y chromium" >&2; exit 1; }; \
	        test -x "$(CHROMIUM)" || { echo "make test: chromium is still not at $(CHROMIUM)" >&2; exit 1; }; \
	    else \
	        echo "make test: the browser tests need Debian's chromium at $(CHROMIUM). Run: sudo apt-get install -y chromium" >&2; \
	        exit 1; \
	    fi; \
	fi

# the docstring examples of src/ (the root conftest.py gives published names their module's imports)
doctest: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider --timeout=300 --doctest-modules src/imgclf

# `make test` (CI) leaves out checks marked slow (soak, fuzz at full size, clusters, multi-node, long real-data
# flows): `make test-all` runs them too.
test: chromium $(STAMP) doctest
	$(BIN)/python -m pytest -q -p no:cacheprovider --timeout=900 -m "not slow and not federated"

test-all: chromium $(STAMP) doctest
	$(BIN)/python -m pytest -q -p no:cacheprovider --timeout=1800 -m "not federated"

# Flower (flwr 1.42) pins older typer / rich / fastapi / starlette than the main environment uses: the federated
# tests run in their own venv with the versions both accept (constraints-federated.txt; see README).
FED := .venv-federated
test-federated:
	test -x $(FED)/bin/python || $(PY) -m venv $(FED)
	$(FED)/bin/pip install -q -c constraints.txt torch==2.14.1 torchvision==0.29.1
	$(FED)/bin/pip install -q -c constraints-federated.txt -e '.[dev,federated]'
	$(FED)/bin/python -m pytest -q -p no:cacheprovider --timeout=3600 -m federated

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not real and not slow and not browser and not federated"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/train_throughput.py

# The documentation site (mkdocs.yml): tutorials execute during the build on small subsets of ../shared/datasets;
# --strict turns a failing cell (named page and cell), a broken link or a missing figure into a failed build.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

clean:
	rm -rf $(VENV) runs .pytest_cache site
