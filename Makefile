# Two commands: `make demo` and `make test` (see README.md).
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.mkcell-installed

.PHONY: demo test install lint bench clean slurm-up slurm-down

$(BIN)/python:
	@command -v $(PY) >/dev/null 2>&1 || { echo "need Python 3.11 as '$(PY)' (override with make PY=...)"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch first: torch==2.13.0 is the CPU build; any other torch request pulls a multi-GB CUDA build.
# GPU users: install a CUDA torch into .venv before `make` (see README) and this step keeps it.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[test,cluster]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/mkcell

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_vs_reference.py
	$(BIN)/python benchmarks/summarize.py --write

# A one-node Slurm on localhost for the `slurm` tests (Debian, root): docs/cluster.md.
slurm-up:
	bash scripts/slurm_local.sh up

slurm-down:
	bash scripts/slurm_local.sh down

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache
