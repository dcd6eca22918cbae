# Tend: the two quick-start commands are `make dev` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test bench install clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Tend needs Python 3.11 or newer") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

## Install, then run Tend on embedded defaults (SQLite, console delivery, a private Redis if needed).
dev: $(STAMP)
	$(BIN)/tend dev

## Install, then run the whole test suite.
test: $(STAMP)
	$(BIN)/python -m pytest

## Benchmarks against DESIGN §7 (by hand; each prints its ratio to a baseline run alongside).
bench: $(STAMP)
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) instance .pytest_cache
