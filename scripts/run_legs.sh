#!/usr/bin/env bash
# Run the test suite on the other supported Pythons (3.10, 3.12, 3.13), each in its own
# virtualenv (.venv-3.10, ...) with the core package, the `ray` extra and the test tools:
# no torch (the index has only multi-GB CUDA builds for 3.12 and 3.13) and no
# spacy-transformers, so the tests that need them skip and say why.
#
# Usage: bash scripts/run_legs.sh [VERSION ...] [-- pytest options, e.g. -k NAME]   (default: 3.10 3.12 3.13)
# Interpreters: PYTHONS="/path/to/python3.10 /path/to/python3.13" (any order), otherwise
# $(pyenv root)/versions/X.Y.*/bin/python, otherwise pythonX.Y on PATH. A leg whose
# interpreter is missing is skipped with the reason; it does not fail the run.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSIONS=()
while [[ $# -gt 0 && "$1" != "--" ]]; do VERSIONS+=("$1"); shift; done
[[ "${1:-}" == "--" ]] && shift
[[ ${#VERSIONS[@]} -gt 0 ]] || VERSIONS=(3.10 3.12 3.13)

# the X.Y an interpreter runs, or nothing if it does not run (pyenv shims refuse)
version_of() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true; }

find_python() {
  local want="$1" candidate
  for candidate in ${PYTHONS:-}; do
    [[ "$(version_of "$candidate")" == "$want" ]] && { echo "$candidate"; return; }
  done
  if command -v pyenv >/dev/null; then
    for candidate in $(ls -d "$(pyenv root)/versions/$want".* 2>/dev/null | sort -V -r); do
      [[ "$(version_of "$candidate/bin/python")" == "$want" ]] && { echo "$candidate/bin/python"; return; }
    done
  fi
  candidate="$(command -v "python$want" || true)"
  [[ -n "$candidate" && "$(version_of "$candidate")" == "$want" ]] && echo "$candidate"
  return 0
}

mkdir -p .legs
declare -A CLOSING
status=0
for version in "${VERSIONS[@]}"; do
  python="$(find_python "$version")"
  if [[ -z "$python" ]]; then
    CLOSING[$version]="SKIPPED: no Python $version (set PYTHONS, or install it with pyenv)"
    echo "leg $version: ${CLOSING[$version]}"
    continue
  fi
  venv=".venv-$version"
  start=$SECONDS
  echo "leg $version: $python -> $venv"
  [[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  # a plain (non-editable) install: pip builds the wheel through pyproject.toml (PEP 517),
  # from a copy of the sources (the 3.11 suite may be installing from the tree meanwhile)
  src="$(mktemp -d)"
  cp -r setup.py pyproject.toml README.md spacy_seqlab "$src/"
  "$venv/bin/python" -m pip install -q -c constraints.txt "$src[ray]" pytest hypothesis
  rm -rf "$src"
  log=".legs/pytest-$version.log"
  set +e
  "$venv/bin/python" -m pytest tests -q -rs -p no:cacheprovider "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  CLOSING[$version]="$(grep -E '[0-9]+ (passed|failed|skipped|errors?)\b' "$log" | tail -n 1 || true)"
  [[ $rc -eq 0 ]] || { status=1; CLOSING[$version]+=" (exit $rc)"; }
  CLOSING[$version]+=" [leg with setup: $((SECONDS - start)) s]"
done

echo
echo "closing lines:"
for version in "${VERSIONS[@]}"; do echo "  Python $version: ${CLOSING[$version]}"; done
exit $status
