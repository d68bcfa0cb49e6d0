# Two commands matter: `make demo` and `make test`. Both create .venv and install into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PRESET ?= cpu
ARGS ?=

.PHONY: demo test install lint bench experiment clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip
	# torch first and pinned, so nothing resolves it to a CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/marketjepa run --preset $(PRESET) $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/prepare_bench.py
	$(BIN)/python benchmarks/pretrain_bench.py
	$(BIN)/python benchmarks/backtest_bench.py

experiment: $(STAMP)
	$(BIN)/marketjepa experiment collapse --preset cpu

clean:
	rm -rf $(VENV) runs data/prepared data/raw
