#!/usr/bin/env bash
# The Bible study to convergence (docs/bible_study.md): train bible_bahdanau and bible_cho,
# one after the other, until dev BLEU has not improved for 3 validations, then compare them
# by source length on the test split with seq2seq-compare (beam 5).
#
# Caps: at most 40 epochs, validation twice an epoch (so "3 validations" is 1.5 epochs),
# early-stopping patience 3, the plateau scheduler of the experiment, the 4 best checkpoints
# kept (for checkpoint averaging and ensembles).
#
# Run it again after an interruption (Ctrl-C, a lost session): a model whose run finished is
# skipped (its run directory holds STUDY_DONE); one cut short continues from its last.ckpt
# with resume=true. Extra arguments go to every seq2seq-train call, e.g. trainer=gpu.
# Output: runs/<experiment>/<time>/ per model and runs/study/compare/ (table, plot, alignments).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.venv/bin}
OUT=${OUT:-runs/study}
mkdir -p "$OUT"

newest_run() {  # newest run directory of an experiment, or nothing
    ls -td runs/"$1"/*/ 2>/dev/null | head -1 || true
}

best_checkpoint() {  # the epoch*.ckpt of a run directory with the highest dev BLEU
    ls "$1"checkpoints/epoch*.ckpt | sed -E 's/.*bleu([0-9.]+)\.ckpt$/\1 &/' | sort -rn | head -1 | cut -d' ' -f2
}

for model in bible_bahdanau bible_cho; do
    run=$(newest_run "$model")
    if [ -n "$run" ] && [ -e "$run"STUDY_DONE ]; then
        echo "study: $model finished in $run; skipped"
        continue
    fi
    args=(experiment="$model" trainer.max_epochs=40 trainer.val_check_interval=0.5
          callbacks.early_stopping.patience=3 callbacks.model_checkpoint.save_top_k=4)
    if [ -n "$run" ] && [ -e "$run"checkpoints/last.ckpt ]; then
        echo "study: $model continues $run"
        args+=(resume=true)
    fi
    "$BIN/seq2seq-train" "${args[@]}" "$@" 2>&1 | tee -a "$OUT/$model.log"
    touch "$(newest_run "$model")"STUDY_DONE
done

"$BIN/seq2seq-compare" "$(best_checkpoint "$(newest_run bible_cho)")" \
    "$(best_checkpoint "$(newest_run bible_bahdanau)")" --names cho bahdanau \
    --src data/bible_en_es/test.en --ref data/bible_en_es/test.es --out "$OUT/compare"
