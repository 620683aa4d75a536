# `make test` and `make demo` set up everything they need on a fresh Debian machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
WHEELHOUSE := $(VENV)/wheelhouse
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: test demo bench lint system-packages venv wheelhouse clean

test: venv lint wheelhouse
	$(BIN)/python -m pytest

# A lite build of examples/lite against a local registry it starts and seeds (no internet).
demo: venv
	$(BIN)/python examples/demo.py

# Every headline benchmark, one table of ratios against the named baselines (docs/benchmarks.md).
bench: venv
	$(BIN)/python bench/all.py

lint: venv
	$(BIN)/ruff check kubenb tests bench
	$(BIN)/mypy

# Debian packages the tests run for real: the registry, skopeo, htpasswd, wget (a Kubefile's RUN),
# bubblewrap (confines RUN to the rootfs), chromium (Playwright drives it in the JupyterLab widget
# tests; never `playwright install`), busybox-static, podman and runc (the container build's tests
# run a stand-in node, tests/support/standin.py, under Podman's Docker-compatible API), openssh-server
# and openssh-client (the cloud build's tests start sshd over that stand-in node, tests/support/sshd.py);
# gcc, libyaml-dev and the interpreter's headers build discovery's YAML reader (kubenb/discover/_yaml_values.c).
system-packages:
	@missing=""; \
	command -v docker-registry >/dev/null || missing="$$missing docker-registry"; \
	command -v skopeo >/dev/null || missing="$$missing skopeo"; \
	command -v htpasswd >/dev/null || missing="$$missing apache2-utils"; \
	command -v wget >/dev/null || missing="$$missing wget"; \
	command -v bwrap >/dev/null || missing="$$missing bubblewrap"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	dpkg -s busybox-static >/dev/null 2>&1 || missing="$$missing busybox-static"; \
	command -v podman >/dev/null || missing="$$missing podman"; \
	command -v runc >/dev/null || missing="$$missing runc"; \
	[ -x /usr/sbin/sshd ] || missing="$$missing openssh-server"; \
	command -v ssh-keygen >/dev/null || missing="$$missing openssh-client"; \
	command -v gcc >/dev/null || missing="$$missing gcc"; \
	[ -f /usr/include/yaml.h ] || missing="$$missing libyaml-dev"; \
	$(PYTHON) -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(sysconfig.get_paths()["include"] + "/Python.h"))' \
	  || missing="$$missing python3-dev"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

venv: system-packages $(VENV)/.installed

$(VENV)/.installed: pyproject.toml kubenb/discover/_yaml_values.c
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

# The wheels binder's files install (binder/requirements.txt, then postBuild's `.[notebooks]`), fetched
# once: tests/test_binder.py installs them into its fresh virtualenv with the package index switched off,
# so the suite does not download them again every run (helm-python-sdk alone is 75 MB). Built anew when
# either file changes; the stamp also names the interpreter, and the test finds the wheelhouse through
# it (sys.prefix), or builds one itself when pytest runs without make.
wheelhouse: $(WHEELHOUSE)/.built

$(WHEELHOUSE)/.built: binder/requirements.txt pyproject.toml $(VENV)/.installed
	$(BIN)/python -m tests.support.wheelhouse $(WHEELHOUSE)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
