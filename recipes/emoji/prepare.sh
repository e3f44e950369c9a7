#!/usr/bin/env bash
# Build the emoji captioning data set in ${DATA_DIR:-data/emoji}/ (default relative to the
# repository root; a relative DATA_DIR you set is taken from where you run this), and put
# torchvision's ImageNet MobileNetV2 weights where torchvision finds them offline. Run from
# anywhere; a second run only checks that everything is in place. Extra arguments go to
# `python -m seq2seq.datasets.emoji`, e.g. --image-size 96.
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

# 2. torchvision's MobileNetV2 ImageNet weights, offline (see recipes/weights.sh).
bash recipes/weights.sh

PY=.venv/bin/python
[ -x "$PY" ] || PY=python3

# 3. Render the emoji and write the Karpathy-style JSON (skipped when already up to date).
"$PY" -m seq2seq.datasets.emoji --out "$DATA_DIR" "$@"
