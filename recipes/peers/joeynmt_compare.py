"""Alternate short training runs of seq2seq and JoeyNMT on the Bible corpus and compare speed.

Run through ``bash recipes/peers/joeynmt.sh``, which installs JoeyNMT and passes its Python.
Both toolkits train the same RNNsearch on the same files; each run's speed is the median of
the target tokens per second the toolkit itself logs (JoeyNMT's "Tokens per Sec", our
``train/tokens_per_s``), its first logged window left out as warm-up. The runs alternate
(JoeyNMT, ours, JoeyNMT, ours, ...) so that a machine whose speed drifts affects both alike,
and the ratio is taken per pair.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

SIZES = {"embed": 256, "hidden": 256, "dropout": 0.2}
VOCAB = 8000
BATCH_TOKENS = 4000
LOG_EVERY = 20
# JoeyNMT runs several times slower: a rate every 5 of its steps, so a short run has several.
JOEY_LOG_EVERY = 5
JOEY_RATE = re.compile(r"Tokens per Sec:\s*([0-9.]+)")


def train_sentencepiece(python: str, data: Path, out: Path) -> dict[str, Path]:
    """One unigram model per side, with our tokenizer's settings, in JoeyNMT's sentencepiece."""
    models = {}
    for lang in ("en", "es"):
        prefix = out / f"spm.{lang}"
        model = out / f"spm.{lang}.model"
        if not model.is_file():
            code = (
                "import sentencepiece as spm, sys; spm.SentencePieceTrainer.train("
                f"input={str(data / f'train.{lang}')!r}, model_prefix={str(prefix)!r}, "
                f"vocab_size={VOCAB}, model_type='unigram', character_coverage=1.0, "
                "minloglevel=2)"
            )
            subprocess.run([python, "-c", code], check=True)
        models[lang] = model
    return models


def joeynmt_config(data: Path, out: Path, spm: dict[str, Path], epochs: int) -> Path:
    """JoeyNMT's YAML for the same model, tokenizer settings, batches and optimiser."""

    def side(lang: str) -> str:
        return (
            f"    lang: {lang}\n    level: bpe\n    lowercase: false\n    max_length: 100\n"
            f"    voc_min_freq: 1\n    voc_limit: {VOCAB}\n    tokenizer_type: sentencepiece\n"
            f"    tokenizer_cfg:\n      model_file: {spm[lang]}\n"
        )

    embed, hidden, dropout = SIZES["embed"], SIZES["hidden"], SIZES["dropout"]
    text = f"""name: bible_rnnsearch
joeynmt_version: 2.3.0
data:
  train: {data / "train"}
  dev: {data / "dev"}
  test: {data / "test"}
  dataset_type: plain
  src:
{side("en")}  trg:
{side("es")}
training:
  random_seed: 1234
  optimizer: adam
  learning_rate: 0.001
  clip_grad_norm: 1.0
  batch_size: {BATCH_TOKENS}
  batch_type: token
  scheduling: plateau
  decrease_factor: 0.5
  patience: 2
  epochs: {epochs}
  validation_freq: 100000000
  logging_freq: {JOEY_LOG_EVERY}
  eval_metrics: [bleu]
  early_stopping_metric: bleu
  model_dir: {out / "joeynmt_model"}
  overwrite: true
  shuffle: true
  use_cuda: false
  keep_best_ckpts: 1
  print_valid_sents: []
testing:
  beam_size: 5
  beam_alpha: 1.0
  eval_metrics: [bleu]
  sacrebleu_cfg:
    tokenize: 13a
model:
  tied_embeddings: false
  encoder:
    type: recurrent
    rnn_type: gru
    embeddings:
      embedding_dim: {embed}
    hidden_size: {hidden}
    bidirectional: true
    dropout: {dropout}
    num_layers: 1
  decoder:
    type: recurrent
    rnn_type: gru
    embeddings:
      embedding_dim: {embed}
    hidden_size: {hidden}
    dropout: {dropout}
    hidden_dropout: {dropout}
    attention: bahdanau
    num_layers: 1
    input_feeding: false
    init_hidden: bridge
"""
    path = out / f"joeynmt_{epochs}epoch.yaml"
    path.write_text(text)
    return path


def median_after_warmup(rates: list[float]) -> float | None:
    """The median rate with the first window (graph building, allocator warm-up) left out."""
    kept = rates[1:] if len(rates) > 1 else rates
    return statistics.median(kept) if kept else None


def run_joeynmt(python: str, config: Path, seconds: float, log: Path) -> float | None:
    """Train JoeyNMT for ``seconds`` and return its median logged tokens per second."""
    # At the timeout the window is over: the logged rates are what counts.
    with open(log, "w") as handle, contextlib.suppress(subprocess.TimeoutExpired):
        subprocess.run(
            [python, "-m", "joeynmt", "train", str(config)],
            stdout=handle, stderr=subprocess.STDOUT, timeout=seconds,
        )  # fmt: skip
    rates = [float(m.group(1)) for m in JOEY_RATE.finditer(log.read_text(errors="replace"))]
    return median_after_warmup(rates)


def run_ours(run_dir: Path, seconds: float, extra: list[str]) -> float | None:
    """Train ``experiment=bible_bahdanau`` for ``seconds`` and return its median tokens/s."""
    minutes, secs = divmod(int(seconds), 60)
    command = [
        str(Path(sys.executable).with_name("seq2seq-train")), "experiment=bible_bahdanau",
        "test=false", f"trainer.log_every_n_steps={LOG_EVERY}", "trainer.enable_progress_bar=false",
        f"trainer.max_time=00:00:{minutes:02d}:{secs:02d}", f"hydra.run.dir={run_dir}", *extra,
    ]  # fmt: skip
    with open(run_dir.with_suffix(".log"), "w") as handle:
        subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, check=False)
    metrics = run_dir / "csv" / "metrics.csv"
    if not metrics.is_file():
        return None
    with open(metrics, newline="") as f:
        rates = [
            float(r["train/tokens_per_s"]) for r in csv.DictReader(f) if r.get("train/tokens_per_s")
        ]
    return median_after_warmup(rates)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--joeynmt-python", required=True, help="Python of JoeyNMT's venv")
    parser.add_argument("--data", type=Path, default=Path("data/bible_en_es"))
    parser.add_argument("--out", type=Path, default=Path("runs/peers/joeynmt"))
    parser.add_argument("--pairs", type=int, default=3, help="alternating pairs of speed runs")
    parser.add_argument("--seconds", type=float, default=180.0, help="wall clock of each run")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    data = args.data.resolve()
    spm = train_sentencepiece(args.joeynmt_python, data, out)
    speed_config = joeynmt_config(data, out, spm, epochs=100)
    pairs = []
    for i in range(args.pairs):
        joey = run_joeynmt(
            args.joeynmt_python, speed_config, args.seconds, out / f"joeynmt_speed{i}.log"
        )
        ours = run_ours(out / f"ours_speed{i}", args.seconds, [f"data.dir={data}"])
        pairs.append(
            {"joeynmt": joey, "seq2seq": ours, "ratio": ours / joey if joey and ours else None}
        )
        print(f"pair {i}: JoeyNMT {joey} tok/s, seq2seq {ours} tok/s", flush=True)
    ratios = [p["ratio"] for p in pairs if p["ratio"]]
    summary = {
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "seconds_per_run": args.seconds,
        "pairs": pairs,
        "median_joeynmt": statistics.median([p["joeynmt"] for p in pairs if p["joeynmt"]] or [0]),
        "median_seq2seq": statistics.median([p["seq2seq"] for p in pairs if p["seq2seq"]] or [0]),
        "median_ratio": statistics.median(ratios) if ratios else None,
    }
    (out / "speed.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0 if ratios else 1


if __name__ == "__main__":
    raise SystemExit(main())
