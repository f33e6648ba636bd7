# Two entry points, each doing all set-up on a fresh machine:
#   make demo   pull the bundled shakespeare model and sample from it
#   make test   run the whole test suite
VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin

.PHONY: demo test bench

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/charzoo pull shakespeare
	$(BIN)/charzoo sample shakespeare --prime "ROMEO:" --length 600 --temperature 0.8 --seed 1

test: $(BIN)/.installed
	$(BIN)/python -m pytest

bench: $(BIN)/.installed
	$(BIN)/python bench/train_throughput.py
	$(BIN)/python bench/sampling_speed.py
