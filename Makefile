# The two commands of the README. Both create .venv/ at the repository root when it is missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: run test check lint typecheck bench clean

# Stamps record what was installed, so `make test` after `make run` adds the dev extra only.
$(VENV)/.installed-run: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -e '.[dev,torch]'
	touch $(VENV)/.installed-run $@

run: $(VENV)/.installed-run
	$(VENV)/bin/zeroserve quickstart

# The checks a reviewer makes come first: a lint or type error fails `make test` before the suite runs.
test: $(VENV)/.installed-dev check
	$(PY) -m pytest -q

check: lint typecheck

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .

# Packages and strictness are in pyproject.toml ([tool.mypy]).
typecheck: $(VENV)/.installed-dev
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache build *.egg-info
