#!/usr/bin/env bash
# Train the fixed-vector and the attention model on the Bible corpus (same sizes, same
# budget) in one Hydra multirun, then compare them by source length with seq2seq-compare.
# Run from the repository root after prepare.sh. Extra arguments go to seq2seq-train, e.g.
#   bash recipes/bible_en_es/train.sh trainer.max_time=00:00:11:00      (a CPU budget)
#   bash recipes/bible_en_es/train.sh trainer=gpu                       (one GPU)
set -euo pipefail
BIN=${BIN:-.venv/bin}
"$BIN/seq2seq-train" -m experiment=bible_cho,bible_bahdanau "$@"
sweep=$(ls -td multirun/*/ | head -1)
checkpoints=()
for job in "$sweep"*_bible_cho/ "$sweep"*_bible_bahdanau/; do
    checkpoints+=("$(ls "$job"checkpoints/epoch*.ckpt | head -1)")
done
"$BIN/seq2seq-compare" "${checkpoints[@]}" --names cho bahdanau \
    --src data/bible_en_es/test.en --ref data/bible_en_es/test.es --out "$sweep"compare
