#!/usr/bin/env bash
# Build WMT'14 English–French from the files you downloaded from statmt.org, then prepare it
# for training (run from anywhere):
#   recipes/wmt14_en_fr/prepare.sh SOURCE_DIR [OUT_DIR] [builder options, e.g. --moses]
# OUT_DIR defaults to data/wmt14_en_fr, the data.dir of the wmt14_* experiments.
set -euo pipefail

if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then
    echo "usage: $0 SOURCE_DIR [OUT_DIR] [--moses] [--corpora A,B] [--selection FILE.en FILE.fr]" >&2
    exit 2
fi
# Relative paths are the caller's, so resolve them before changing to the repository root.
SOURCE_DIR=$(realpath -m "$1")
shift
OUT_DIR=data/wmt14_en_fr
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
    OUT_DIR=$(realpath -m "$1")
    shift
fi
# --selection's two files are paths too; note whether --moses needs sacremoses.
ARGS=()
PATHS_LEFT=0
MOSES=0
for arg in "$@"; do
    if [ "$PATHS_LEFT" -gt 0 ]; then
        arg=$(realpath -m "$arg")
        PATHS_LEFT=$((PATHS_LEFT - 1))
    fi
    case "$arg" in
        --selection) PATHS_LEFT=2 ;;
        --moses) MOSES=1 ;;
    esac
    ARGS+=("$arg")
done

cd "$(dirname "$0")/../.."

PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
if [ "$MOSES" -eq 1 ]; then
    "$PY" -c "import sacremoses" 2>/dev/null || "$PY" -m pip install "sacremoses>=0.1"
fi

"$PY" -m seq2seq.datasets.wmt14 "$SOURCE_DIR" "$OUT_DIR" ${ARGS[@]+"${ARGS[@]}"}

PREPARE=.venv/bin/seq2seq-prepare
[ -x "$PREPARE" ] || PREPARE=seq2seq-prepare
# Hydra reads a path with spaces or other special characters only when it is quoted.
case "$OUT_DIR" in
    *[!A-Za-z0-9_./-]*) DATA_DIR="'$OUT_DIR'" ;;
    *) DATA_DIR=$OUT_DIR ;;
esac
"$PREPARE" experiment=wmt14_rnnsearch50 data.dir="$DATA_DIR"
