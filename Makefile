# Relais — the two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test serve bench clean fixtures

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==26.3"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/relais demo

# One worker per core; a test file stays on one worker (its module fixtures and order kept).
test: $(STAMP)
	$(BIN)/python -m pytest -n auto --dist loadfile

serve: $(STAMP)
	$(BIN)/relais serve

bench: $(STAMP)
	$(BIN)/python bench/run.py

fixtures: $(STAMP)
	$(BIN)/python fixtures/generate.py

clean:
	rm -rf $(VENV) var .pytest_cache
