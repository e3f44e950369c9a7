#!/usr/bin/env bash
# Train Show and Tell (emoji_nic: one image vector) and then Show, Attend and Tell (emoji_sat:
# attention over the CNN grid) on the emoji captions, after prepare.sh. Run from anywhere;
# each run writes its logs and checkpoints to runs/emoji/<experiment>/<time>/ and a copy of
# its console output to console.log there. Extra arguments go to both runs, e.g.
#   bash recipes/emoji/train.sh trainer=gpu
#   DATA_DIR=/data/emoji bash recipes/emoji/train.sh trainer.max_epochs=5
set -euo pipefail
if [ -n "${DATA_DIR:-}" ] && [ "${DATA_DIR#/}" = "$DATA_DIR" ]; then DATA_DIR="$PWD/$DATA_DIR"; fi
cd "$(dirname "$0")/../.."
DATA_DIR=${DATA_DIR:-data/emoji}
BIN=${BIN:-.venv/bin}

if [ ! -f "$DATA_DIR/dataset_emoji.json" ]; then
    echo "error: $DATA_DIR/dataset_emoji.json missing; run recipes/emoji/prepare.sh first" >&2
    exit 1
fi

for experiment in emoji_nic emoji_sat; do
    # A concrete directory (not Hydra's ${now:...}) so the console log can go next to it.
    run_dir="runs/emoji/$experiment/$(date +%Y-%m-%d_%H-%M-%S)"
    mkdir -p "$run_dir"
    echo "== $experiment -> $run_dir"
    "$BIN/seq2seq-train" "experiment=$experiment" \
        "data.annotations=$DATA_DIR/dataset_emoji.json" "data.image_root=$DATA_DIR" \
        "hydra.run.dir=$run_dir" "$@" 2>&1 | tee "$run_dir/console.log"
done
