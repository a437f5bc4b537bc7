# The two commands of the README: `make demo` (the main job) and `make test` (the suite).
# Each installs what it needs: the virtualenv with the project, and Debian's Chromium and
# tinyproxy (the crawl's bot-check browser; real forward proxies for the tests).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install system-packages chromium demo test check test-slow lint bench

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 18

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the project with its dev tools

system-packages:  ## install Debian's Chromium and tinyproxy if missing (one apt-get run)
	@scripts/ensure-system-packages.sh

chromium: system-packages  ## the former name of system-packages

demo: install system-packages  ## run the main job on SQLite, the bundled replica site and sample inbox
	@scripts/demo.sh

lint: install  ## ruff (lint + format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint system-packages  ## lint, type-check, then the whole suite (SQLite + PostgreSQL + Chromium + tinyproxy)
	$(BIN)/pytest

check: lint system-packages  ## the quick loop: lint, type-check, then the suite less its slow harnesses
	$(BIN)/pytest -m "not slow"

test-slow: install system-packages  ## the slow harnesses only (crash consistency, big concurrency runs)
	$(BIN)/pytest -m slow

bench: install  ## the benchmarks (PostgreSQL on 127.0.0.1:5432)
	$(BIN)/python bench/bench_loader.py
