"""Alternate short training runs of seq2seq and JoeyNMT on the Bible corpus and compare speed.

Run through ``bash recipes/peers/joeynmt.sh``, which installs JoeyNMT and passes its Python.
Both toolkits train the same RNNsearch on the same files; each run's speed is the median of
the target tokens per second the toolkit itself logs (JoeyNMT's "Tokens per Sec", our
``train/tokens_per_s``), its first logged window left out as warm-up. The runs alternate
(JoeyNMT, ours, JoeyNMT, ours, ...) so that a machine whose speed drifts affects both alike,
and the ratio is taken per pair. Then, unless ``--skip-epoch``, the epoch phase of
``joeynmt_quality.py``: one epoch of each, dev BLEU and chrF with greedy search and beam 5.
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
from joeynmt_quality import DECODE_BATCH, LENGTH_PENALTY, epoch_phase, table, write_yaml

SIZES = {"embed": 256, "hidden": 256, "dropout": 0.2}
VOCAB = 8000
BATCH_TOKENS = 4000
LOG_EVERY = 20
# JoeyNMT runs several times slower: a rate every 5 of its steps, so a short run has several.
JOEY_LOG_EVERY = 5
JOEY_RATE = re.compile(r"Tokens per Sec:\s*([0-9.]+)")


def train_sentencepiece(python: str, data: Path, out: Path, vocab: int = VOCAB) -> dict[str, Path]:
    """One unigram model per side, with our tokenizer's settings, in JoeyNMT's sentencepiece."""
    models = {}
    for lang in ("en", "es"):
        prefix = out / f"spm{vocab}.{lang}"
        model = out / f"spm{vocab}.{lang}.model"
        if not model.is_file():
            code = (
                "import sentencepiece as spm, sys; spm.SentencePieceTrainer.train("
                f"input={str(data / f'train.{lang}')!r}, model_prefix={str(prefix)!r}, "
                f"vocab_size={vocab}, model_type='unigram', character_coverage=1.0, "
                "minloglevel=2)"
            )
            subprocess.run([python, "-c", code], check=True)
        models[lang] = model
    return models


def joeynmt_settings(
    data: Path,
    model_dir: Path,
    spm: dict[str, Path],
    epochs: int,
    vocab: int = VOCAB,
) -> dict:
    """JoeyNMT's config for the same model, tokenizer settings, batches and optimiser.

    Training never validates (``validation_freq`` past any run; JoeyNMT saves its weights
    at the end as ``latest.ckpt`` all the same); ``testing`` holds the decoding options of
    the epoch phase (joeynmt_quality.py), which sets the beam and the checkpoint there.
    """

    def side(lang: str) -> dict:
        return {
            "lang": lang, "level": "bpe", "lowercase": False, "max_length": 100,
            "voc_min_freq": 1, "voc_limit": vocab, "tokenizer_type": "sentencepiece",
            "tokenizer_cfg": {"model_file": str(spm[lang])},
        }  # fmt: skip

    splits = {"train": str(data / "train"), "dev": str(data / "dev"), "test": str(data / "test")}
    embed, hidden, dropout = SIZES["embed"], SIZES["hidden"], SIZES["dropout"]
    rnn = {"type": "recurrent", "rnn_type": "gru", "embeddings": {"embedding_dim": embed}}
    testing = {
        "beam_size": 5, "beam_alpha": LENGTH_PENALTY, "batch_size": DECODE_BATCH,
        "batch_type": "sentence", "eval_metrics": ["bleu"], "sacrebleu_cfg": {"tokenize": "13a"},
    }  # fmt: skip
    return {
        "name": "bible_rnnsearch",
        "joeynmt_version": "2.3.0",
        "data": {**splits, "dataset_type": "plain", "src": side("en"), "trg": side("es")},
        "training": {
            "random_seed": 1234,
            "optimizer": "adam",
            "learning_rate": 0.001,
            "clip_grad_norm": 1.0,
            "batch_size": BATCH_TOKENS,
            "batch_type": "token",
            "scheduling": "plateau",
            "decrease_factor": 0.5,
            "patience": 2,
            "epochs": epochs,
            "validation_freq": 100000000,
            "logging_freq": JOEY_LOG_EVERY,
            "eval_metrics": ["bleu"],
            "early_stopping_metric": "bleu",
            "model_dir": str(model_dir),
            "overwrite": True,
            "shuffle": True,
            "use_cuda": False,
            "keep_best_ckpts": 1,
            "print_valid_sents": [],
        },  # fmt: skip
        "testing": testing,
        "model": {
            "tied_embeddings": False,
            "encoder": {
                **rnn,
                "hidden_size": hidden,
                "bidirectional": True,
                "dropout": dropout,
                "num_layers": 1,
            },  # fmt: skip
            "decoder": {
                **rnn,
                "hidden_size": hidden,
                "dropout": dropout,
                "hidden_dropout": dropout,
                "attention": "bahdanau",
                "num_layers": 1,
                "input_feeding": False,
                "init_hidden": "bridge",
            },  # fmt: skip
        },
    }


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


def ours_rate(run_dir: Path) -> float | None:
    """The median of the ``train/tokens_per_s`` a run of ours logged, warm-up left out."""
    metrics = run_dir / "csv" / "metrics.csv"
    if not metrics.is_file():
        return None
    with open(metrics, newline="") as f:
        rates = [
            float(r["train/tokens_per_s"]) for r in csv.DictReader(f) if r.get("train/tokens_per_s")
        ]
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
    return ours_rate(run_dir)


def machine() -> dict:
    return {
        "processor": platform.processor() or platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def speed_phase(args: argparse.Namespace, data: Path, out: Path, spm: dict, extra: list[str]):
    """The alternating pairs of speed runs; the summary written to speed.json."""
    settings = joeynmt_settings(data, out / "joeynmt_model", spm, epochs=100, vocab=args.vocab)
    speed_config = write_yaml(settings, out / "joeynmt_speed.yaml")
    pairs = []
    for i in range(args.pairs):
        joey = run_joeynmt(
            args.joeynmt_python, speed_config, args.seconds, out / f"joeynmt_speed{i}.log"
        )
        ours = run_ours(out / f"ours_speed{i}", args.seconds, extra)
        pairs.append(
            {"joeynmt": joey, "seq2seq": ours, "ratio": ours / joey if joey and ours else None}
        )
        print(f"pair {i}: JoeyNMT {joey} tok/s, seq2seq {ours} tok/s", flush=True)
    ratios = [p["ratio"] for p in pairs if p["ratio"]]
    summary = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "seconds_per_run": args.seconds,
        "vocab": args.vocab,
        "pairs": pairs,
        "median_joeynmt": statistics.median([p["joeynmt"] for p in pairs if p["joeynmt"]] or [0]),
        "median_seq2seq": statistics.median([p["seq2seq"] for p in pairs if p["seq2seq"]] or [0]),
        "median_ratio": statistics.median(ratios) if ratios else None,
    }
    (out / "speed.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return bool(ratios)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--joeynmt-python", required=True, help="Python of JoeyNMT's venv")
    parser.add_argument("--data", type=Path, default=Path("data/bible_en_es"))
    parser.add_argument("--out", type=Path, default=Path("runs/peers/joeynmt"))
    parser.add_argument(
        "--pairs", type=int, default=3, help="alternating pairs of speed runs (0: none)"
    )
    parser.add_argument("--seconds", type=float, default=180.0, help="wall clock of each run")
    parser.add_argument(
        "--skip-epoch", action="store_true", help="leave out the one-epoch training and dev BLEU"
    )
    parser.add_argument(
        "--beams", type=int, nargs="+", default=[1, 5], help="beam sizes of the dev decodings"
    )
    parser.add_argument(
        "--vocab", type=int, default=VOCAB,
        help=f"sentencepiece pieces per side (default {VOCAB}; less for a tiny smoke corpus)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    data = args.data.resolve()
    spm = train_sentencepiece(args.joeynmt_python, data, out, args.vocab)
    tokenizer = f"data.tokenizer.vocab_size={args.vocab}"
    ok = speed_phase(args, data, out, spm, [f"data.dir={data}", tokenizer]) if args.pairs else True
    if args.skip_epoch:
        return 0 if ok else 1
    settings = joeynmt_settings(data, out / "joeynmt_epoch", spm, epochs=1, vocab=args.vocab)
    start = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    extra = [tokenizer, f"trainer.log_every_n_steps={LOG_EVERY}"]
    results = epoch_phase(args.joeynmt_python, settings, data, out, args.beams, extra, ours_rate)
    quality = {"machine": machine(), "date": start, "vocab": args.vocab, **results}
    (out / "quality.json").write_text(json.dumps(quality, indent=2) + "\n")
    print(json.dumps(quality, indent=2))
    print(table(results))
    failed = [name for name, r in results.items() if "error" in r or any(
        "error" in d for d in r.get("decoding", {}).values())]  # fmt: skip
    return 0 if ok and not failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
