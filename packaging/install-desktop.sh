#!/usr/bin/env bash
# Register a built bundle with the Linux desktop (per user, no root needed):
#   packaging/install-desktop.sh [BUNDLE_DIR]   (default: dist/medviewer)
# Links BUNDLE_DIR/medviewer into ~/.local/bin, installs the icons into the
# hicolor theme and the .desktop file into ~/.local/share/applications.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUNDLE="$(cd "${1:-$ROOT/dist/medviewer}" && pwd)"
DATA="${XDG_DATA_HOME:-$HOME/.local/share}"
[ -x "$BUNDLE/medviewer" ] || { echo "install-desktop.sh: no executable in $BUNDLE" >&2; exit 2; }
mkdir -p "$HOME/.local/bin" "$DATA/applications"
ln -sf "$BUNDLE/medviewer" "$HOME/.local/bin/medviewer"
for size in 16 24 32 48 64 128 256; do
  install -D -m 644 "$ROOT/resources/icons/medviewer-$size.png" \
    "$DATA/icons/hicolor/${size}x${size}/apps/medviewer.png"
done
install -D -m 644 "$ROOT/resources/icons/medviewer.svg" "$DATA/icons/hicolor/scalable/apps/medviewer.svg"
sed "s|^Exec=medviewer|Exec=$BUNDLE/medviewer|; s|^TryExec=medviewer|TryExec=$BUNDLE/medviewer|" \
  "$ROOT/packaging/medviewer.desktop" > "$DATA/applications/medviewer.desktop"
command -v update-desktop-database >/dev/null && update-desktop-database "$DATA/applications" || true
echo "medviewer registered: $DATA/applications/medviewer.desktop"
