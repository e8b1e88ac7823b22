#!/bin/sh
# Regenerate resources/models/demo.safetensors with the bundled trainer (CPU, a few minutes).
# Usage: sh resources/models/make_demo.sh [WORKDIR]
set -e
WORK="${1:-${TMPDIR:-/tmp}/medviewer-demo}"
HERE="$(cd "$(dirname "$0")" && pwd)"
rm -rf "$WORK/data" "$WORK/run"
medviewer make-dataset "$WORK/data" --n 150 --size 96 --seed 7
medviewer --train --data "$WORK/data" --out "$WORK/run" \
    --arch mobilenet_v3_small --image-size 96 --epochs 10 --batch-size 16 \
    --optimizer adamw --lr 2e-3 --weight-decay 1e-4 --scheduler onecycle --hflip 0.5 \
    --device cpu --seed 0 --half \
    --intended-use demo --name medviewer-demo-lesions
cp "$WORK/run/model.safetensors" "$HERE/demo.safetensors"
echo "report: $WORK/run/report.html"
