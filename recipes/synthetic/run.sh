#!/usr/bin/env bash
# Train the fixed-vector (Cho) and the attention (Bahdanau) model on the synthetic task with
# the same sizes and budget, in one Hydra multirun, then score both on the test split.
# Run from the repository root after the README's install step:  bash recipes/synthetic/run.sh
set -euo pipefail
BIN=${BIN:-.venv/bin}
"$BIN/seq2seq-train" -m experiment=synthetic_cho,synthetic_bahdanau "$@"
sweep=$(ls -td multirun/*/ | head -1)
for run in "$sweep"*/; do
    best=$(ls "$run"checkpoints/epoch*.ckpt | head -1)
    echo "== $run ($best)"
    "$BIN/seq2seq-evaluate" "$best" --src data/synthetic/test.src --ref data/synthetic/test.tgt --by-length
done
