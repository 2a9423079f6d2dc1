# dcgan-data: set-up, tests, demo and benchmarks. `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
# A GPU user overrides this, e.g. TORCH_SPEC="torch==2.13.0 --index-url ..."; the default is
# the CPU build that CI machines have on disk.
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DCGAN := $(BIN)/dcgan-data
WORKERS ?= $(shell nproc 2>/dev/null || echo 2)
DEVICE ?= auto
SIZE ?= 64
STEPS ?= 20000

# a failed stage must not leave its target behind looking finished
.DELETE_ON_ERROR:

.PHONY: help install browser test lint demo bench fit-verify clean
.DEFAULT_GOAL := help

help: ## list the targets and the variables
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort
	@echo
	@echo "variables (make lsun LSUN=my_photos STEPS=2000 ...):"
	@echo "  LSUN        lsun's input: an LSUN LMDB, a folder of them, or a folder of images"
	@echo "  CRAWL       faces' input: a crawl list (one URL or path per line)"
	@echo "  OUT         output folder [build/lsun, build/faces]"
	@echo "  SIZE        image side in px: 32, 64 or 128 [$(SIZE)]"
	@echo "  STEPS       training steps [$(STEPS)]"
	@echo "  DEVICE      auto, cpu or cuda [$(DEVICE)]"
	@echo "  WORKERS     ingest processes [all cores]"
	@echo "  TRAIN_ARGS, DEDUP_ARGS, AUDIT_ARGS, FACES_ARGS, FACES_DEDUP_ARGS"
	@echo "              more options for that stage's verb (see dcgan-data VERB --help)"
	@echo "A stage re-runs when its input or its arguments change."
	@echo "The training defaults (20,000 steps of batch 128, nets 128 wide at 64 px) are sized"
	@echo "for a GPU. On a CPU, size it as the demo does:"
	@echo "  SIZE=$(SAMPLE_SIZE) STEPS=$(SAMPLE_STEPS) TRAIN_ARGS=\"--ngf 32 --ndf 32 --batch-size 64\""

install: $(STAMP) ## create .venv and install dcgan-data with its dev tools and Ray

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e ".[dev,interop,ray]"
	touch $@

# The report test renders pages in Debian's chromium; install it when missing (CI runs as root).
browser:
	@command -v chromium >/dev/null || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

test: install browser ## run every test: lint, unit tests, then both pipelines on the bundled sample
	$(BIN)/ruff check .
	$(BIN)/python -m pytest
	$(MAKE) --no-print-directory pipelines

lint: install ## ruff
	$(BIN)/ruff check .

demo: install ## the LSUN pipeline on the bundled sample data
	$(MAKE) --no-print-directory sample-lsun
	@echo
	@echo "demo done. Open $(SAMPLE)/lsun/report.html in a browser; it gathers:"
	@echo "  $(SAMPLE)/lsun/ingested/   shards, ingest_report.json, contact_sheet.png"
	@echo "  $(SAMPLE)/lsun/dedup/      de-duplicated shards, duplicates.csv, dedup_report.json, duplicates.png"
	@echo "  $(SAMPLE)/lsun/train/      config.json, metrics.jsonl, loss.png, samples/, checkpoints/last.pt"
	@echo "  $(SAMPLE)/lsun/samples.png 64 images from the trained generator"

bench: install ## benchmarks, each against its peer or physical limit (writes bench/out/)
	$(BIN)/pip install --quiet -e ".[dev,bench]"
	@for script in $(wildcard bench/*.py); do \
	  echo "== $$script"; PEERS_PYTHON=$(PEERS_PYTHON) $(BIN)/python $$script || exit 1; done

# tools/ holds what the benchmarks use and is no benchmark itself: the near-duplicate sets
# (neardup_sets, holdout_sets), the fit of dedup's verification model (fit_verify), the peers
# that bench/dedup.py runs in the environment named by PEERS_PYTHON (dedup_peers), and the
# torchvision stand-in of bench/train.py
fit-verify: install ## refit dcgan_data/dedup/verify_model.json on the tuning set (tools/fit_verify.py)
	$(BIN)/python tools/fit_verify.py

clean: ## remove build outputs (keeps .venv)
	rm -rf build bench/out

include pipelines/stages.mk pipelines/lsun.mk pipelines/faces.mk pipelines/sample.mk
