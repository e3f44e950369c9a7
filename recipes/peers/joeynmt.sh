#!/usr/bin/env bash
# seq2seq side by side with JoeyNMT 2.3 on the Bible corpus, in one command:
#   bash recipes/peers/joeynmt.sh [--pairs 3] [--seconds 180] [--skip-epoch] [--beams 1 5]
# The same RNNsearch sizes (embeddings 256, bi-GRU 256, decoder 256, Bahdanau attention,
# dropout 0.2), the same tokenizer settings (sentencepiece unigram, 8,000 pieces per side,
# character coverage 1.0, trained on the same training split), the same batch size in tokens
# (4,000), Adam at 0.001 with the gradient norm clipped at 1, on the same split files
# (recipes/bible_en_es). Training runs of the two alternate on this machine; each reports its
# own target tokens per second (JoeyNMT's log, our train/tokens_per_s), and the summary gives
# the median of each and of the pairs' ratios. Results: runs/peers/joeynmt/speed.json.
# Then (unless --skip-epoch) each trains one epoch on the training split and decodes the dev
# split with greedy search and beam 5; both toolkits' hypotheses are scored by the same
# sacrebleu calls (BLEU 13a, chrF), with the wall time of the epoch and of each decoding:
# runs/peers/joeynmt/quality.json (recipes/peers/joeynmt_quality.py lists what still differs).
# --pairs 0 leaves out the speed runs; --vocab N (default 8000) is for a tiny smoke corpus.
#
# JoeyNMT 2.3 goes in its own virtual environment ($JOEYNMT_VENV, default
# ~/.cache/seq2seq-peers/joeynmt) that reuses this project's torch through a .pth file, with
# the fixes it needs on today's torch, applied here:
#   - importlib_metadata installed (joeynmt/helpers.py imports it);
#   - sentencepiece<0.2 (its tokenizer uses the 0.1 API);
#   - `verbose` removed from its ReduceLROnPlateau call (torch 2.x dropped the argument).
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${JOEYNMT_VENV:-$HOME/.cache/seq2seq-peers/joeynmt}

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import joeynmt" 2>/dev/null; then
    python3 -m venv "$VENV"
    site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    vsite=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    echo "$site" >"$vsite/reuse_seq2seq_venv.pth"  # torch without a second 5 GB copy
    "$VENV/bin/pip" install --quiet "joeynmt==2.3.0" "sentencepiece<0.2" importlib_metadata
fi
builders=$("$VENV/bin/python" -c 'import joeynmt.builders as b; print(b.__file__)')
sed -i '/"verbose": False,/d' "$builders"

[ -f data/bible_en_es/train.en ] || bash recipes/bible_en_es/prepare.sh
exec .venv/bin/python recipes/peers/joeynmt_compare.py --joeynmt-python "$VENV/bin/python" "$@"
