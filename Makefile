# The two commands of the README. Both create .venv/ at the repository root when it is missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: run test check lint typecheck bench clean grpc-protos

# Stamps record what was installed, so `make test` after `make run` adds the dev extra only.
$(VENV)/.installed-run: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -e '.[dev,torch]'
	touch $(VENV)/.installed-run $@

# promtool lints /metrics in tests/observability. Debian's prometheus package ships it: only the binary is
# unpacked into the venv (no Prometheus service installed). Without apt the test skips, naming the tool.
$(VENV)/.installed-promtool: $(VENV)/.installed-dev
	@command -v promtool >/dev/null || test -x $(VENV)/bin/promtool || ( d=$$(mktemp -d) && cd $$d && \
	  { [ "$$(id -u)" != 0 ] || apt-get update -qq; } && apt-get download -qq prometheus 2>/dev/null && \
	  dpkg-deb -x prometheus_*.deb . && cp usr/bin/promtool $(CURDIR)/$(VENV)/bin/; rc=$$?; rm -rf $$d; exit $$rc ) || \
	  echo "promtool not installed (needs apt): tests/observability skip the promtool check"
	touch $@

# The console's browser tests (tests/zeroserve/console) drive Debian's chromium through chromium-driver (no browser
# download). As root, apt installs both when missing; otherwise those tests skip, naming the missing tool.
$(VENV)/.installed-chromium: $(VENV)/.installed-dev
	@{ command -v chromium >/dev/null && command -v chromedriver >/dev/null; } || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } || \
	  echo "chromium not installed (needs apt as root): tests/zeroserve/console skip the browser tests"
	touch $@

run: $(VENV)/.installed-run
	$(VENV)/bin/zeroserve quickstart

# The checks a reviewer makes come first: a lint or type error fails `make test` before the suite runs.
test: $(VENV)/.installed-dev $(VENV)/.installed-promtool $(VENV)/.installed-chromium check
	$(PY) -m pytest -q

check: lint typecheck

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .

# Packages and strictness are in pyproject.toml ([tool.mypy]).
typecheck: $(VENV)/.installed-dev
	$(VENV)/bin/mypy

# The checked-in Open Inference Protocol messages (protocol/grpc/), regenerated after an edit of the .proto.
grpc-protos: $(VENV)/.installed-dev
	$(PY) -m grpc_tools.protoc -I. --python_out=. --pyi_out=. protocol/grpc/grpc_predict_v2.proto

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache build *.egg-info
