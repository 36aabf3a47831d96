#!/bin/sh
# The GPU check of issue 12 (docs in benchmarks/gpu_check.py): `make gpu-check`, or run it with your options.
exec "${PYTHON:-python}" "$(dirname "$0")/gpu_check.py" "$@"
