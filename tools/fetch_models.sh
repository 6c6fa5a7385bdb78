#!/usr/bin/env bash
# Fetch the real models the tests use into the git-ignored cache testdata/external/.
#
#   tools/fetch_models.sh            # uses `python3 -m pip` (or $QOPT_PYTHON -m pip)
#
# PP-OCRv4 det/rec/cls ship inside the rapidocr-onnxruntime 1.4.4 wheel (Apache-2.0). The wheel is
# downloaded with `pip download --no-deps` and the three models are unpacked, renamed to short
# stable names:
#   testdata/external/ppocr/det.onnx  <- rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx
#   testdata/external/ppocr/rec.onnx  <- rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx
#   testdata/external/ppocr/cls.onnx  <- rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx
# The reference models in ../shared/models are not fetched: they are read in place.
#
# Idempotent: models already present (and non-empty) are left alone. Any failure stops the script
# with a non-zero exit and a message; partial files are never left under their final names.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/testdata/external/ppocr"
python="${QOPT_PYTHON:-}"
if [[ -z "$python" ]]; then
    if [[ -x "$root/.venv/bin/python" ]]; then python="$root/.venv/bin/python"; else python=python3; fi
fi

wheel_version="1.4.4"
declare -A models=(
    [det]="ch_PP-OCRv4_det_infer.onnx"
    [rec]="ch_PP-OCRv4_rec_infer.onnx"
    [cls]="ch_ppocr_mobile_v2.0_cls_infer.onnx"
)

missing=0
for short in det rec cls; do
    [[ -s "$dest/$short.onnx" ]] || missing=1
done
if [[ $missing -eq 0 ]]; then
    echo "fetch_models: PP-OCR models already in $dest"
    exit 0
fi

mkdir -p "$dest"
tmp="$(mktemp -d "$root/testdata/external/.fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

echo "fetch_models: downloading rapidocr-onnxruntime==$wheel_version"
if ! "$python" -m pip download --no-deps --only-binary=:all: --dest "$tmp" \
        "rapidocr-onnxruntime==$wheel_version" >"$tmp/pip.log" 2>&1; then
    cat "$tmp/pip.log" >&2
    echo "fetch_models: error: pip download of rapidocr-onnxruntime==$wheel_version failed" >&2
    exit 1
fi
wheel="$(ls "$tmp"/rapidocr_onnxruntime-"$wheel_version"-*.whl 2>/dev/null | head -n 1)"
if [[ -z "$wheel" ]]; then
    echo "fetch_models: error: no rapidocr_onnxruntime-$wheel_version wheel in the download" >&2
    exit 1
fi

# A wheel is a zip file; Python's zipfile avoids depending on `unzip`.
"$python" - "$wheel" "$tmp" <<'PY'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith("rapidocr_onnxruntime/models/") and name.endswith(".onnx"):
            z.extract(name, out)
PY

for short in det rec cls; do
    src="$tmp/rapidocr_onnxruntime/models/${models[$short]}"
    if [[ ! -s "$src" ]]; then
        echo "fetch_models: error: ${models[$short]} is not in $wheel" >&2
        exit 1
    fi
    # Rename within the destination folder so the final name appears complete or not at all.
    cp "$src" "$dest/.$short.onnx.part"
    mv -f "$dest/.$short.onnx.part" "$dest/$short.onnx"
    echo "fetch_models: $dest/$short.onnx"
done
