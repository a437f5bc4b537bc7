# The two commands of the README: `make demo` (the main job) and `make test` (the suite).
# Each installs what it needs: the virtualenv with the project, and Debian's Chromium.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install chromium demo test lint bench

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 12

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the project with its dev tools

chromium:  ## install Debian's Chromium if it is missing (the crawl's bot-check browser)
	@scripts/ensure-chromium.sh

demo: install chromium  ## run the main job on SQLite, the bundled replica site and sample inbox
	@scripts/demo.sh

lint: install  ## ruff (lint + format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint chromium  ## lint, type-check, then the whole test suite (SQLite + PostgreSQL + Chromium)
	$(BIN)/pytest

bench: install  ## the benchmarks (PostgreSQL on 127.0.0.1:5432)
	$(BIN)/python bench/bench_loader.py
