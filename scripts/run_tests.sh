#!/usr/bin/env bash
# Set up a virtualenv with the pinned stack (if needed) and run the test suite.
# Usage: bash scripts/run_tests.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# torch first and alone: it resolves to the local CPU wheel; with other packages
# pip may pick a multi-GB CUDA build.
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -c constraints.txt -e ".[test]"
# -rs: say why a test was skipped (e.g. tests/test_gpu.py without cupy and a GPU)
.venv/bin/python -m pytest tests -q -rs "$@"
