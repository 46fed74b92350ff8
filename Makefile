# hashrepro: every target builds its own environment in .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= experiments/hashcnn_mnist5k.yaml
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: install test test-slow lint format bench fit reproduce-table2 clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall when the dependency pins change. Constraints keep every install the same set.
$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	WANDB_MODE=offline $(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-slow: $(STAMP)
	WANDB_MODE=offline $(BIN)/python -m pytest -q -m slow $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check hashrepro tests benchmarks
	$(BIN)/ruff format --check hashrepro tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format hashrepro tests benchmarks
	$(BIN)/ruff check --fix hashrepro tests benchmarks

# BENCH_ARGS="--device cuda" adds the torch path on a GPU; "--quick" a small sanity run
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_retrieval.py $(BENCH_ARGS)

# The papers' Table 2: embedded data by default; QUICK=1 for a short check; FULL=1 for the
# configs' own epochs (several times longer); DATA=paper for the paper datasets (files under
# data/). Finished cells are kept: a rerun resumes.
QUICK ?=
FULL  ?=
DATA  ?= embedded
reproduce-table2: $(STAMP)
	$(BIN)/python -m hashrepro.reporting --data $(DATA) $(if $(QUICK),--quick,) $(if $(FULL),--full-budget,)

fit: $(STAMP)
	$(BIN)/hashrepro fit --config $(CONFIG)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
