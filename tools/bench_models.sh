# Sourced by tools/bench_int8_vs_fp32.sh and tools/bench_int8_vs_ort.sh: the models both time
# and how each is quantized. Needs $Q (the qopt binary); honours QOPT_SHARED_MODELS, QOPT_PPOCR.
M=${QOPT_SHARED_MODELS:-../shared/models}
P=${QOPT_PPOCR:-testdata/external/ppocr}

# name | fp32 model | input name | shape | calibration | quantize pipeline
bench_models=(
  "mnist_cnn_bn|$M/mnist_cnn_bn.onnx|input|1,1,28,28|random:8{seed=1}|quantize"
  "efficientnet_lite0|$M/efficientnet_lite0_keepbn.onnx|input|1,3,224,224|random:8{seed=1}|quantize"
  # PP-OCR exports compute shapes at run time: const-fold them away first (with the input
  # shape pinned) so that calibration sees only real activations.
  "ppocr_cls|$P/cls.onnx|x|1,3,48,192|random:8{seed=1}|shape-infer,const-fold,dce,fuse,calib,qdq"
  "ppocr_rec|$P/rec.onnx|x|1,3,48,320|random:8{seed=1}|shape-infer,const-fold,dce,fuse,calib,qdq"
  "ppocr_det|$P/det.onnx|x|1,3,640,640|random:4{seed=1}|shape-infer,const-fold,dce,fuse,calib,qdq"
)

# bench_quantize FP32 INPUT SHAPE CALIB PIPELINE OUT: quantize one model (random calibration
# data: latency does not depend on the ranges).
bench_quantize() {
  local fp=$1 input=$2 shape=$3 calib=$4 pipe=$5 out=$6
  if [[ $pipe == quantize ]]; then
    "$Q" quantize "$fp" --calib "$calib" --input-shape "$input=$shape" -q -o "$out"
  else
    "$Q" --passes="$pipe" "$fp" --calib "$calib" --input-shape "$input=$shape" -q -o "$out"
  fi
}
