# ltbench: the two commands of the README are `make main` and `make test`.
# Everything else here is what they are made of.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
export PIP_DISABLE_PIP_VERSION_CHECK = 1
# Two cores on the CI machines: keep the mmcv build from oversubscribing them.
export MAX_JOBS ?= 2

.PHONY: help setup setup-mmdet setup-gpu gpu-check main smoke regression all-tables test test-fast lint bench clean-results

help:
	@echo "make main         set up .venv (CPU) and run the main job: tables/pcb_table2.md at mini scale, 3 seeds"
	@echo "make test         set up .venv with the mmdet extra and run the whole test suite"
	@echo "make regression   the regression check: 3 rows of PCB Table 2 at mini scale against committed values"
	@echo "make smoke        PCB Table 2 at smoke scale: 60-iteration models, one seed (the plumbing, not the methods)"
	@echo "make all-tables   every table of every paper at smoke scale (mmdet extra: cascade and HTC rows)"
	@echo "make setup        only create .venv with the default CPU stack"
	@echo "make setup-mmdet  also build mmcv 2.1.0 (CPU ops) and install mmengine/mmdet"
	@echo "make setup-gpu    on a GPU node: torch 2.13.0 for its driver, mmcv 2.1.0 with CUDA ops, mmdet, tests"
	@echo "make gpu-check    on a GPU node: paper-scale train/predict speed and memory per framework (8 min)"
	@echo "make lint         snakemake --lint"
	@echo "make bench        run the benchmarks in benchmarks/"
	@echo "make clean-results  remove the store and the rendered tables (kept: work/, predictions, evaluations)"

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

# --- GPU nodes ---------------------------------------------------------------------------------------
# setup-gpu: the torch 2.13.0 build that fits this node's driver and GPUs (scripts/select_torch_build.py asks
# nvidia-smi; it fails with the reason where none fits), mmcv 2.1.0 built with its CUDA ops for the node's
# compute capabilities (nvcc of the same CUDA major as torch's build must be on PATH or in CUDA_HOME; no pip
# cache, so that a CPU-ops wheel cached by setup-mmdet is never reused), then the project's other requirements
# (test and mmdet extras) and the project itself without dependencies, so that pip never swaps the chosen torch
# for the registry's. Run on the GPU node itself, once per environment; rerun after pyproject.toml changes.
GPU_BUILD = $(VENV)/torch-build.env
# nvcc jobs for the mmcv build: all of the node's CPUs (MAX_JOBS=2 above is for the CI machines)
GPU_MAX_JOBS ?= $(shell nproc 2>/dev/null || echo 4)
setup-gpu:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PYTHON) scripts/select_torch_build.py select > $(GPU_BUILD).tmp
	mv $(GPU_BUILD).tmp $(GPU_BUILD)
	$(PIP) install --quiet --upgrade "pip>=24" "setuptools<70" wheel ninja
	. "$(abspath $(GPU_BUILD))" && $(PIP) install $$TORCH_PIP_ARGS
	. "$(abspath $(GPU_BUILD))" && $(PY) scripts/select_torch_build.py check-nvcc --cuda "$$TORCH_CUDA"
	. "$(abspath $(GPU_BUILD))" && MAX_JOBS=$(GPU_MAX_JOBS) MMCV_WITH_OPS=1 FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$$TORCH_CUDA_ARCH_LIST" \
		$(PIP) install --no-build-isolation --no-cache-dir "mmcv==2.1.0"
	$(PY) scripts/select_torch_build.py requirements --extras test,mmdet --exclude torch,torchvision,mmcv > $(VENV)/gpu-requirements.txt
	$(PIP) install --quiet -r $(VENV)/gpu-requirements.txt
	$(PIP) install --quiet --no-deps -e .
	. "$(abspath $(GPU_BUILD))" && $(PY) scripts/select_torch_build.py verify --cuda "$$TORCH_CUDA" --mmcv
	touch $(VENV)/.ltbench-core $(VENV)/.ltbench-mmdet

# The 8-minute check of benchmarks/gpu_check.py at paper settings (GPU_CHECK_ARGS: e.g. --iterations 100 --out f.json).
gpu-check:
	test -x $(PY) || { echo "no $(PY): run make setup-gpu first"; exit 1; }
	PYTHON=$(PY) benchmarks/gpu_check.sh $(GPU_CHECK_ARGS)

# --- the two README commands ------------------------------------------------------------------------
# The main job: PCB Table 2 at mini scale (README, "Mini scale"): the synthetic backbone, then 8 runs of 200
# iterations per seed, 3 seeds; the table ends with its claims judged with the seeds' interval.
main: setup
	$(VENV)/bin/snakemake --profile local --config scale=mini seeds=3 -- tables/pcb_table2.md
	@echo; cat tables/pcb_table2.md

# The regression check (README, "Regression check"): PCB Table 2's Softmax, RFS, Softmax + PCB and RFS + PCB rows at mini
# scale, seed 0, against workflows/regression/expected.yaml; exits 1 on any entry out of tolerance.
regression: setup
	$(VENV)/bin/snakemake --profile local --config scale=mini -- regression

# PCB Table 2 at smoke scale: 16 runs of 60 iterations, one seed: checks the plumbing in minutes.
smoke: setup
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
	for b in benchmarks/*.py; do case $$b in */gpu_check.py) continue;; esac; $(PY) $$b || exit 1; done  # gpu_check: make gpu-check

# The store and everything rendered from it, so that the next run makes them again from the evaluations
# (results/metrics/); trained models (work/), predictions and evaluations stay. Generated files only: the
# READMEs of results/ and tables/ are versioned (tests/workflow/test_workflow_recovery.py checks git ls-files).
clean-results:
	rm -rf results/records results/failures results/tables results/metrics.parquet results/regression.md \
	       tables/plots tables/site
	test ! -d tables || find tables -maxdepth 1 -type f \( -name '*.md' -o -name '*.tex' -o -name '*.html' \) ! -name README.md -delete
