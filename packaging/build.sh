#!/usr/bin/env bash
# Build the medviewer one-folder bundle with PyInstaller.
#
#   packaging/build.sh [--flavor cpu|cuda] [--dist DIR] [--work DIR]
#
# Needs the `package` extra (pip install -e ".[package]", pins pyinstaller).
# Prints the build time and the bundle size by component at the end.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
FLAVOR="${MEDVIEWER_FLAVOR:-cpu}"
DIST="$ROOT/dist"
WORK="$ROOT/build/pyinstaller"
while [ $# -gt 0 ]; do
  case "$1" in
    --flavor) FLAVOR="$2"; shift 2 ;;
    --dist) DIST="$2"; shift 2 ;;
    --work) WORK="$2"; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
PY="${PYTHON:-python3}"
if ! "$PY" -c "import PyInstaller" 2>/dev/null; then
  echo "build.sh: PyInstaller missing: pip install -e '.[package]'" >&2
  exit 2
fi
export MEDVIEWER_FLAVOR="$FLAVOR"
start=$(date +%s)
"$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
  --distpath "$DIST" --workpath "$WORK" "$ROOT/packaging/medviewer.spec"
end=$(date +%s)
install -m 644 "$ROOT/packaging/medviewer.desktop" "$DIST/medviewer/" 2>/dev/null || true
echo "build.sh: $FLAVOR bundle built in $((end - start)) s -> $DIST/medviewer"
"$PY" "$ROOT/packaging/sizes.py" "$DIST/medviewer"
