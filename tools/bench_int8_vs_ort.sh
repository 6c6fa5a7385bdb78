#!/usr/bin/env bash
# qopt's INT8 plan against ONNX Runtime running the same QDQ model, one thread each.
# Each model is quantized by qopt as in tools/bench_int8_vs_fp32.sh (random calibration data:
# latency does not depend on the ranges); then tools/bench_vs_ort.py runs `qopt run` (INT8 plan)
# and ONNX Runtime (default graph optimizations: its QDQ fusion into int8 kernels) alternately,
# ROUNDS rounds of REPEAT runs, and prints the median latencies and their ratio qopt / ORT
# (< 1: qopt faster). The activations are int8 (the onnxruntime target's choice), which ONNX
# Runtime runs more slowly than uint8 on CPUs without VNNI; the table says so.
# ONLY=name,name restricts the models.
# Usage: tools/bench_int8_vs_ort.sh [QOPT_BINARY] (default target/release/qopt); needs the Python
# of tools/requirements.txt (onnx, onnxruntime, numpy) as `python3` or $PYTHON.
set -euo pipefail
Q=${1:-target/release/qopt}
PY=${PYTHON:-python3}
ROUNDS=${ROUNDS:-5}
REPEAT=${REPEAT:-20}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

. "$(dirname "$0")/bench_models.sh"

printf '%-20s %12s %12s %10s\n' model "qopt ms" "ORT ms" "qopt/ORT"
for m in "${bench_models[@]}"; do
  IFS='|' read -r name fp input shape calib pipe <<<"$m"
  if [[ -n ${ONLY:-} && ,$ONLY, != *,$name,* ]]; then continue; fi
  if [[ ! -f $fp ]]; then echo "SKIP: $name: $fp not found"; continue; fi
  q=$W/$name.int8.onnx
  bench_quantize "$fp" "$input" "$shape" "$calib" "$pipe" "$q"
  out=$("$PY" "$(dirname "$0")/bench_vs_ort.py" "$q" --shape "${shape//,/x}" --rounds "$ROUNDS" \
    --repeat "$REPEAT" --threads 1 --qopt "$Q run" 2>/dev/null)
  qm=$(sed -n 's/^qopt: median \([0-9.]*\) ms.*/\1/p' <<<"$out")
  om=$(sed -n 's/^ORT : median \([0-9.]*\) ms.*/\1/p' <<<"$out")
  printf '%-20s %12.3f %12.3f %10.2f\n' "$name" "$qm" "$om" "$(awk -v a="$qm" -v b="$om" 'BEGIN{print a/b}')"
done
