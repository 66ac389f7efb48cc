# CellCelly: `make run` starts the stack on embedded defaults, `make test` runs every test tier.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed
# the dev tools, then whatever PYTHONPATH the caller gave (`PYTHONPATH=build/compiled make bench`)
DEVPATH := tools$(if $(PYTHONPATH),:$(PYTHONPATH))

.PHONY: run test lint typecheck unit integration bench bench-check profile compile e2e-local images clean

# what running needs (`make run`), then what testing adds (`make test`): a first `make run` installs
# only the former, with pip's progress shown
$(RUN_STAMP): pyproject.toml
	@echo "make run: installing the stack's Python packages into $(VENV) (once; about a minute)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --disable-pip-version-check --progress-bar on -e .
	touch $(RUN_STAMP)

$(STAMP): $(RUN_STAMP) pyproject.toml operator/pyproject.toml
	@echo "make: installing the development and test tools into $(VENV) (once)"
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]' -e ./operator
	touch $(STAMP)

## run the stack on embedded defaults (SQLite, embedded balance store): no Java, no cluster
run: $(RUN_STAMP)
	$(VENV)/bin/cellcelly run

## every test tier, with lint and type checks first; under CI=true nothing that can run here may skip
test: $(STAMP) lint typecheck
	$(PY) -m pytest -rsfE --durations=25

lint: $(STAMP)
	$(PY) -m ruff check services operator tools tests e2e
	$(PY) -m ruff format --check services operator tools tests e2e

typecheck: $(STAMP)
	$(PY) -m mypy

unit: $(STAMP)
	$(PY) -m pytest -rs -m unit

integration: $(STAMP)
	$(PY) -m pytest -rs -m "integration or contract"

## charging, events and self-care figures beside their baselines; then the operator on kmock (50 stacks)
bench: $(STAMP)
	PYTHONPATH=$(DEVPATH) $(PY) -m cellcelly_dev.bench
	PYTHONPATH=$(DEVPATH) $(PY) -m cellcelly_dev.operator_bench --stacks 50

## the package as the services image ships it (the charging path compiled by mypyc, setup.py) in
## build/compiled: `PYTHONPATH=build/compiled make bench` measures it
compile: $(STAMP)
	PYTHONPATH=tools $(PY) -m cellcelly_dev.compiled build/compiled

## `make bench`'s rows against this machine's bench/reference.json: fails on a row > 25% below (ratios to baselines first)
bench-check: $(STAMP)
	PYTHONPATH=$(DEVPATH) $(PY) -m cellcelly_dev.bench --check

## where a CCR's CPU goes in the DGW and the OCS (py-spy on the two-process path) into docs/profile-ccr.md,
## pure Python and the compiled build (before and after compiling)
profile: compile
	PYTHONPATH=tools $(PY) -m cellcelly_dev.profile_ccr
	PYTHONPATH=build/compiled:tools $(PY) -m cellcelly_dev.profile_ccr

## the e2e scenario against the embedded stack (cellcelly run under a supervisor); on kind: e2e/README.md
e2e-local: $(STAMP)
	$(PY) -m pytest -rs e2e/test_e2e_local.py

## the service and operator images (docker, or podman from a local debootstrap base)
images:
	scripts/images.sh build

clean:
	rm -rf $(VENV) data build .pytest_cache .mypy_cache .ruff_cache .hypothesis bench/results
