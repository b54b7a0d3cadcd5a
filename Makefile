# One entry point for people and CI. Every install step lives here or in pyproject.toml.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS := dev,llama,hf,serve
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install browser test lint typecheck pytest serve bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# pip caches the llama-cpp-python wheel it compiles, so only the first install on a machine pays for it.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check src tests benchmarks

typecheck: install
	$(BIN)/mypy

# The playground's browser tests drive Debian's chromium through Playwright (no browser download).
browser:
	sh scripts/ensure-browser.sh

pytest: install browser
	$(BIN)/python -m pytest -q

test: lint typecheck pytest

serve: install
	$(BIN)/qwenkit serve --host $(HOST) --port $(PORT)

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .pytest_cache .ruff_cache
