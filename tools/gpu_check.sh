#!/usr/bin/env bash
# The GPU path in one command, from a checkout on any machine with an NVIDIA GPU (docs/gpu-check.md):
#   tools/gpu_check.sh [--out DIR] [--steps env,imports,build,sr,raster,tests,pipeline] [--budget SECONDS]
#   tools/gpu_check.sh --dry      # no GPU needed: the steps that need none (tests/test_gpu_check.py)
# The summary is DIR/summary.md (default: $OUT, else .cache/gpu-check/out), the whole output DIR/gpu_check.log.
# PYTHON names the interpreter that holds torch (default: python3). Wheels in .whl/ are installed first.
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${OUT:-}"
args=()
while (($#)); do
  case "$1" in
    --out) out="${2:?--out needs a folder}"; shift 2 ;;
    --out=*) out="${1#--out=}"; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
out="${out:-$repo/.cache/gpu-check/out}"
mkdir -p -- "$out" && out="$(cd -- "$out" && pwd)" || exit 1
cd -- "$repo" || exit 1
export PYTHONUNBUFFERED=1
"${PYTHON:-python3}" tools/gpu_check.py --out "$out" ${args[@]+"${args[@]}"} 2>&1 | tee "$out/gpu_check.log"
exit "${PIPESTATUS[0]}"
