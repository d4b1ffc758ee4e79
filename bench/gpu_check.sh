#!/usr/bin/env bash
# One command for a machine with one NVIDIA GPU and no network: the CUDA-marked tests,
# then decode attention, sampling, end-to-end decode, prefill attention, MoE-vs-dense and
# packed int4 figures (the int4 matrix-vector kernel's bandwidth, int4 against bf16 decode).
# Needs torch, triton, transformers and pytest in $PYTHON (default python3); the repo
# is used in place (PYTHONPATH), nothing is installed or downloaded. Writes
# $OUT/gpu_check.json when OUT is set.
#
#   bench/gpu_check.sh            # on the GPU machine
#   bench/gpu_check.sh --dry-run  # every step at toy size on the CPU (no GPU needed)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PYTHON="${PYTHON:-python3}"
DRY=()
if [[ "${1:-}" == "--dry-run" ]]; then
  DRY=(--dry-run)
  export CUDA_VISIBLE_DEVICES=""
elif [[ $# -gt 0 ]]; then
  echo "usage: $0 [--dry-run]" >&2
  exit 2
fi

echo "== preflight"
# Everything must already be there (no network); a missing module is named, not guessed at.
# Pure-Python ones (gguf, which neuron.text imports) can travel with the tree in a folder
# added to PYTHONPATH.
missing=$("$PYTHON" -c '
import importlib.util as u
need = ["torch", "triton", "transformers", "tokenizers", "pytest", "numpy", "jinja2", "gguf", "psutil"]
print(" ".join(n for n in need if u.find_spec(n) is None))')
if [[ -n "$missing" ]]; then
  echo "missing Python modules for $PYTHON: $missing" >&2
  exit 3
fi

echo "== CUDA-marked tests"
# On the dry run these tests skip (no GPU): the step still checks that they collect and load.
# Only the files holding CUDA-marked tests are collected: the rest need the serving stack.
mapfile -t cuda_tests < <(grep -rl --include='test_*.py' 'mark.cuda' tests | sort)
set +e
"$PYTHON" -m pytest -m cuda -q -p no:cacheprovider "${cuda_tests[@]}"
tests_rc=$?
set -e
case $tests_rc in
  0) tests="passed" ;;
  5) tests="none collected" ;;
  *) tests="failed (pytest exit $tests_rc)" ;;
esac
if [[ ${#DRY[@]} -gt 0 && $tests_rc -eq 0 ]]; then tests="skipped (dry run: no GPU)"; fi

echo "== measurements"
ARGS=("${DRY[@]}" --tests "$tests")
if [[ -n "${OUT:-}" ]]; then ARGS+=(--out "$OUT/gpu_check.json"); fi
"$PYTHON" -m bench.gpu_check "${ARGS[@]}"

echo "== CUDA-marked tests: $tests"
[[ $tests_rc -eq 0 || $tests_rc -eq 5 ]]
