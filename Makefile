# ltbench: the two commands of the README are `make main` and `make test`.
# Everything else here is what they are made of.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
export PIP_DISABLE_PIP_VERSION_CHECK = 1
# Two cores on the CI machines: keep the mmcv build from oversubscribing them.
export MAX_JOBS ?= 2

.PHONY: help setup setup-mmdet main all-tables test test-fast lint bench clean-results

help:
	@echo "make main         set up .venv (CPU) and run the main job: tables/pcb_table2.md at smoke scale"
	@echo "make test         set up .venv with the mmdet extra and run the whole test suite"
	@echo "make all-tables   every table of every paper at smoke scale (mmdet extra: cascade and HTC rows)"
	@echo "make setup        only create .venv with the default CPU stack"
	@echo "make setup-mmdet  also build mmcv 2.1.0 (CPU ops) and install mmengine/mmdet"
	@echo "make lint         snakemake --lint"
	@echo "make bench        run the benchmarks in benchmarks/"

# --- environment -----------------------------------------------------------------------------------
# The stamp files make setup idempotent: re-running costs nothing until pyproject.toml changes.
$(VENV)/.ltbench-core: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=24"
	$(PIP) install --quiet -e ".[test]"
	touch $@

# mmcv 2.1.0 has no wheel for torch 2.13: build it from source with its CPU ops. Its setup.py imports
# torch and pkg_resources, hence --no-build-isolation and setuptools<70. pip caches the built wheel.
$(VENV)/.ltbench-mmdet: $(VENV)/.ltbench-core
	$(PIP) install --quiet "setuptools<70" wheel ninja
	MMCV_WITH_OPS=1 $(PIP) install --no-build-isolation "mmcv==2.1.0"
	$(PIP) install --quiet -e ".[mmdet,test]"
	touch $@

setup: $(VENV)/.ltbench-core
setup-mmdet: $(VENV)/.ltbench-mmdet

# --- the two README commands ------------------------------------------------------------------------
main: setup
	$(VENV)/bin/snakemake --profile local tables/pcb_table2.md
	@echo; cat tables/pcb_table2.md

# Every table of every paper at smoke scale: tables/<paper>.md for the four papers (README, "All tables").
# Needs the mmdet extra: the Cascade (Mask) R-CNN and HTC rows train through mmdet on the CPU.
all-tables: setup-mmdet
	$(VENV)/bin/snakemake --profile local all_tables
	@echo; ls tables/*.md

# pytest exits 5 when it collected no test; that is not a failure of the setup.
test: setup-mmdet
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; rc=0; fi; exit $$rc

test-fast: setup
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/snakemake --lint

bench: setup
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean-results:
	rm -rf results/records results/metrics.parquet tables/*.md tables/*.tex tables/*.html tables/plots tables/site
