#!/usr/bin/env bash
# Build the English–Spanish Bible corpus in data/bible_en_es/ (run from anywhere).
set -euo pipefail
cd "$(dirname "$0")/../.."

# The SWORD modules come from Debian/Ubuntu packages; without root, install them yourself.
if [ ! -e /usr/share/sword/mods.d/engWEB2015eb.conf ] || [ ! -e /usr/share/sword/mods.d/spaRV1909eb.conf ]; then
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update
        apt-get install -y sword-text-web sword-text-sparv
    else
        echo "warning: not root; if the next step fails, run: sudo apt-get install -y sword-text-web sword-text-sparv" >&2
    fi
fi

PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
"$PY" -c "import pysword" 2>/dev/null || "$PY" -m pip install "pysword>=0.2"

"$PY" -m seq2seq.datasets.bible data/bible_en_es "$@"
