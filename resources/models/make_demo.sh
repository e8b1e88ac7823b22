#!/bin/sh
# Regenerate resources/models/demo.safetensors with the bundled trainer (CPU, a few minutes).
# Uses this checkout's code (python3 -m medviewer with the checkout on PYTHONPATH).
# Usage: sh resources/models/make_demo.sh [WORKDIR]
set -e
WORK="${1:-${TMPDIR:-/tmp}/medviewer-demo}"
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PY="${PYTHON:-python3}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
rm -rf "$WORK/data" "$WORK/run"
"$PY" -m medviewer make-dataset "$WORK/data" --n 150 --size 96 --seed 7
# The PNG images carry no DICOM header: --modality/--body-part record what they depict,
# so that the viewer's input check can warn on other modalities and body parts.
"$PY" -m medviewer --train --data "$WORK/data" --out "$WORK/run" \
    --arch mobilenet_v3_small --image-size 96 --epochs 10 --batch-size 16 \
    --optimizer adamw --lr 2e-3 --weight-decay 1e-4 --scheduler onecycle --hflip 0.5 \
    --device cpu --seed 0 --half \
    --modality CT --body-part CHEST \
    --intended-use demo --name medviewer-demo-lesions
cp "$WORK/run/model.safetensors" "$HERE/demo.safetensors"
echo "report: $WORK/run/report.html"
