# Two entry points on a fresh Debian machine: `make demo` (the main job) and `make test`.
# Each installs what it needs and is a no-op install when everything is already there.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)
HOME_DIR ?= $(CURDIR)/.demo_home
PYTEST_ARGS ?=

.PHONY: demo test test-fast lint ui install sysdeps browser services clean-demo

sysdeps:
	@if ! ldconfig -p | grep -q libavcodec.so || ! command -v ffprobe >/dev/null; then \
		echo "installing FFmpeg libraries (torchcodec needs them) ..."; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends ffmpeg; \
	fi

browser:
	@if ! command -v chromium >/dev/null; then \
		echo "installing Debian's chromium (UI tests) ..."; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium; \
	fi

# The distributed test (tests/test_distributed.py) starts its own Redis and PostgreSQL 15 on loopback.
services:
	@if ! command -v redis-server >/dev/null || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "installing Debian's redis-server and postgresql (distributed test) ..."; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends redis-server postgresql; \
	fi

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	@rm -f $(VENV)/.installed-*; touch $@

install: sysdeps $(STAMP)

demo: install
	SDL_VIDEODRIVER=dummy $(VENV)/bin/lerobot-assets demo --home $(HOME_DIR)

ui: install
	$(VENV)/bin/lerobot-assets ui --home $(HOME_DIR)

# Lint and types first: they take seconds and name the line, before minutes of tests.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: lint browser services
	SDL_VIDEODRIVER=dummy $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

test-fast: lint
	SDL_VIDEODRIVER=dummy $(VENV)/bin/python -m pytest -m "not slow and not browser" $(PYTEST_ARGS)

clean-demo:
	rm -rf $(HOME_DIR)
