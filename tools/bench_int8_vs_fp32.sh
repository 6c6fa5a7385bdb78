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
M=${QOPT_SHARED_MODELS:-../shared/models}
P=${QOPT_PPOCR:-testdata/external/ppocr}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

# name | fp32 model | input name | shape | calibration | quantize pipeline
models=(
  "mnist_cnn_bn|$M/mnist_cnn_bn.onnx|input|1,1,28,28|random:8{seed=1}|quantize"
  "efficientnet_lite0|$M/efficientnet_lite0_keepbn.onnx|input|1,3,224,224|random:8{seed=1}|quantize"
  # PP-OCR exports compute shapes at run time: const-fold them away first (with the input
  # shape pinned) so that calibration sees only real activations.
  "ppocr_cls|$P/cls.onnx|x|1,3,48,192|random:8{seed=1}|shape-infer,const-fold,dce,fuse,calib,qdq"
  "ppocr_rec|$P/rec.onnx|x|1,3,48,320|random:8{seed=1}|shape-infer,const-fold,dce,fuse,calib,qdq"
  "ppocr_det|$P/det.onnx|x|1,3,640,640|random:4{seed=1}|shape-infer,const-fold,dce,fuse,calib,qdq"
)

min_ms() { sed -n 's/.*min \([0-9.]*\) ms.*/\1/p'; }

printf '%-20s %12s %12s %8s\n' model "fp32 ms" "int8 ms" "ratio"
for m in "${models[@]}"; do
  IFS='|' read -r name fp input shape calib pipe <<<"$m"
  if [[ ! -f $fp ]]; then echo "SKIP: $name: $fp not found"; continue; fi
  q=$W/$name.int8.onnx
  if [[ $pipe == quantize ]]; then
    "$Q" quantize "$fp" --calib "$calib" --input-shape "$input=$shape" -q -o "$q"
  else
    "$Q" --passes="$pipe" "$fp" --calib "$calib" --input-shape "$input=$shape" -q -o "$q"
  fi
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
