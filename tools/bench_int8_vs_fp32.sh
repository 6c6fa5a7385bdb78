#!/usr/bin/env bash
# INT8 plan against the fp32 interpreter, one thread, with `qopt run --repeat N --threads 1`:
# each model is quantized by `qopt` (random calibration data: latency does not depend on the
# ranges), then the fp32 and the quantized model run alternately ROUNDS times; the best of the
# per-round minimum latencies is reported with the ratio fp32 / int8 (> 1: INT8 faster).
# Usage: tools/bench_int8_vs_fp32.sh [QOPT_BINARY] (default target/release/qopt). No Python
# packages needed; the models come from ../shared/models and testdata/external/ppocr
# (tools/fetch_models.sh); absent ones are skipped.
set -euo pipefail
Q=${1:-target/release/qopt}
ROUNDS=${ROUNDS:-3}
REPEAT=${REPEAT:-20}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

. "$(dirname "$0")/bench_models.sh"

min_ms() { sed -n 's/.*min \([0-9.]*\) ms.*/\1/p'; }

printf '%-20s %12s %12s %8s\n' model "fp32 ms" "int8 ms" "ratio"
for m in "${bench_models[@]}"; do
  IFS='|' read -r name fp input shape calib pipe <<<"$m"
  if [[ ! -f $fp ]]; then echo "SKIP: $name: $fp not found"; continue; fi
  q=$W/$name.int8.onnx
  bench_quantize "$fp" "$input" "$shape" "$calib" "$pipe" "$q"
  # The input: seeded uniform [0, 1) data, written as .npy with the standard library only.
  x=$W/$name.x.npy
  python3 - "$x" "$shape" <<'PY'
import random, struct, sys
path, shape = sys.argv[1], [int(d) for d in sys.argv[2].split(",")]
n = 1
for d in shape:
    n *= d
rng = random.Random(0)
header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s,), }" % ", ".join(map(str, shape))
header += " " * (63 - (10 + len(header)) % 64) + "\n"
with open(path, "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
    f.write(struct.pack("<%df" % n, *(rng.random() for _ in range(n))))
PY
  best_f=999999; best_q=999999
  for _ in $(seq "$ROUNDS"); do
    f=$("$Q" run "$fp" --input "$input=$x" --repeat "$REPEAT" --threads 1 | min_ms)
    i=$("$Q" run "$q" --input "$input=$x" --repeat "$REPEAT" --threads 1 | min_ms)
    best_f=$(awk -v a="$best_f" -v b="$f" 'BEGIN{print (b<a)?b:a}')
    best_q=$(awk -v a="$best_q" -v b="$i" 'BEGIN{print (b<a)?b:a}')
  done
  printf '%-20s %12.3f %12.3f %8.2f\n' "$name" "$best_f" "$best_q" \
    "$(awk -v a="$best_f" -v b="$best_q" 'BEGIN{print a/b}')"
done
