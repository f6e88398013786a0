# The two commands the README leads with: `make plan` and `make test`. Both work on a fresh Debian
# machine with Python 3.11; `make test` also installs the Debian packages the tests run (as root).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= venv
BIN := $(VENV)/bin
POLICY_VENV := policy/venv
# Tools the tests run for real: caddy validate, cloud-init schema, wg/wg-quick (+ wireguard-go for the
# lab), a DNS server and sshd for the lab, curl for probes, pebble (a test ACME CA) and lego for the lab's
# public certificate, openssl, systemd-analyze for the watch's unit, promtool (Debian's prometheus) for the
# alert rules and a real Alertmanager for the watch's alerts. --no-install-recommends: wireguard-tools
# would otherwise pull in a whole kernel.
DEBIAN_TEST_PACKAGES := prometheus prometheus-alertmanager caddy cloud-init wireguard-tools wireguard-go iproute2 knot knot-dnsutils \
	openssh-server openssh-client curl procps util-linux shellcheck openssl pebble lego nftables xz-utils systemd

.PHONY: plan test lint bench setup debian-packages engine clean

plan: $(VENV)/.installed
	$(BIN)/mana-infra plan --stack prod

test: lint debian-packages engine $(POLICY_VENV)/.installed
	$(BIN)/python -m pytest

# Zero findings, or the suite does not run: lint, formatting, and strict types over the package.
lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(VENV)/.installed debian-packages
	$(BIN)/python benchmarks/bench.py

setup: $(VENV)/.installed $(POLICY_VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || $(MAKE) --no-print-directory python-venv
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -e .
	touch $@

# The policy pack's own virtualenv (policy/PulumiPolicy.yaml names it): `pulumi preview --policy-pack
# policy` runs the pack with it.
$(POLICY_VENV)/.installed: policy/requirements.txt
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || $(MAKE) --no-print-directory python-venv
	$(PYTHON) -m venv $(POLICY_VENV)
	$(POLICY_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r policy/requirements.txt
	touch $@

# A fresh Debian has python3 but not the venv module.
.PHONY: python-venv
python-venv:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv; \
	else \
		echo "Python's venv module is missing: run 'sudo apt-get install python3-venv'"; exit 1; \
	fi

debian-packages:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		missing=$$(for package in $(DEBIAN_TEST_PACKAGES); do dpkg -s $$package >/dev/null 2>&1 || echo $$package; done); \
		if [ -n "$$missing" ]; then \
			echo "installing Debian packages:" $$missing; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
		fi; \
	else \
		echo "not root on Debian: tests that run caddy, cloud-init, wg or the lab will skip"; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

# The real Pulumi engine in .engine/: the CLI built from the Go modules pinned in engine/pulumi/go.mod,
# the Python language host and the six provider plugins from MANA_ENGINE_OFFLINE (a folder of them;
# .ci/run names ../shared/engine) or Pulumi's servers. Once: a stamp keeps later runs to milliseconds.
engine:
	engine/build.sh
