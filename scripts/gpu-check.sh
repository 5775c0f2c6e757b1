#!/usr/bin/env bash
# The GPU check: tiny-model backends in float16/bfloat16 (batched vs one at a time), batching
# throughput at batch 1/8/32, a few bf16 student training steps; a markdown report.
#
#   bash scripts/gpu-check.sh [--cpu] [--out DIR]
#
# On CUDA it writes DIR/gpu-check.md (DIR defaults to benchmarks/results). Without a CUDA GPU it
# says so and exits 0; --cpu runs the same checks small, in float32, on the CPU and writes
# DIR/gpu-check-cpu.md (so CI keeps the script working). Python: $PYTHON or .venv/bin/python.
# Exit status: 0, or 1 when some backend's batched results differ beyond the tolerance.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
cpu=0
out="$root/benchmarks/results"
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) cpu=1; shift ;;
    --out) out="${2:?--out needs a folder}"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown argument $1 (usage: gpu-check.sh [--cpu] [--out DIR])" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
out="$(cd "$out" && pwd)"  # absolute: we cd below
if [ "$cpu" = 1 ]; then
  device=cpu; report="$out/gpu-check-cpu.md"
elif "$python" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  device=cuda; report="$out/gpu-check.md"
else
  echo "gpu-check: torch sees no CUDA GPU here; nothing checked (--cpu runs the small CPU check)"
  exit 0
fi
cd "$root"
exec "$python" benchmarks/gpu_check.py --device "$device" --out "$report"
