# dcgan-data: set-up, tests, demo and benchmarks. `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
# A GPU user overrides this, e.g. TORCH_SPEC="torch==2.13.0 --index-url ..."; the default is
# the CPU build that CI machines have on disk.
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WORKERS ?= 2

.PHONY: help install test lint demo bench clean
.DEFAULT_GOAL := help

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

install: $(STAMP) ## create .venv and install dcgan-data with its dev tools

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

test: install ## run every test (unit tests, then the pipelines on the bundled sample)
	$(BIN)/python -m pytest
	$(BIN)/ruff check .

lint: install ## ruff
	$(BIN)/ruff check .

demo: install ## the LSUN pipeline on the bundled sample data
	$(MAKE) --no-print-directory -f pipelines/demo.mk BIN=$(abspath $(BIN)) WORKERS=$(WORKERS)

bench: install ## benchmarks, each against its peer or physical limit (writes bench/out/)
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean: ## remove build outputs (keeps .venv)
	rm -rf build pipelines/sample/build bench/out
