"""One epoch of JoeyNMT and of seq2seq on the same split, then dev BLEU, greedy and beam 5.

The phase of ``recipes/peers/joeynmt_compare.py`` after its speed pairs (``--skip-epoch``
leaves it out). Each toolkit trains the config of the speed runs for exactly one epoch over
the training split, without validating (JoeyNMT saves its weights at the end of training as
``latest.ckpt``; ours writes ``checkpoints/last.ckpt`` at the end of every epoch), then
decodes the dev split with each beam size with its own decoder: JoeyNMT's ``test`` mode with a
config whose ``testing.load_model`` is that checkpoint and ``testing.beam_size`` the beam,
ours ``seq2seq-translate``. Every hypothesis file (detokenised text, one line per dev line)
is scored by the same sacrebleu calls against the dev references: corpus BLEU with 13a
tokenisation, and chrF. Wall times are of the whole command (start-up, data and model
loading included). Results: ``quality.json`` beside ``speed.json``.

Set equal: the model sizes, tokenizer settings, token batches, optimiser and seed of the
speed runs; decoding in batches of 64 sentences; length penalty 1.0 in beam search; the 1-best
hypothesis; no <unk> suppression. Differences that remain:

- Length penalty formula: ours ranks finished hypotheses by ``log p / length``; JoeyNMT's
  ``beam_alpha: 1.0`` divides by GNMT's ``(5 + length) / 6``, during the search as well.
- Longest output: ours ``2 * source tokens + 10`` per sentence (at most 300); JoeyNMT's
  default, ``1.5 *`` the longest source of the batch, for every sentence of the batch (its
  batches are in file order; ours are sorted by length within chunks of 1,000 lines). Neither
  can be set to the other's rule without changing the toolkit.
- The epoch's batches: each toolkit shuffles and batches by its own rule (JoeyNMT counts the
  padded size of its token batches its own way), so the number of updates differs a little.
- The plateau scheduler never acts (no validation in one epoch), in either toolkit.
- Ours uses the maxout output layer of RNNsearch (8.5 M parameters against 7.85 M).
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import sacrebleu
import yaml

#: Length penalty of both beam searches (ours: the exponent; JoeyNMT: beam_alpha).
LENGTH_PENALTY = 1.0
#: Sentences per decoding batch, in both toolkits.
DECODE_BATCH = 64
JOEY_EPOCH = re.compile(
    r"Epoch\s+\d+, total training loss: .*num\. of tokens: (\d+), ([0-9.]+)\[sec\]"
)
JOEY_DEV_BLEU = re.compile(r"Evaluation result \([^)]*\): bleu:\s*([0-9.]+)")


def read_lines(path: Path) -> list[str]:
    """A text file's lines without their line endings."""
    with open(path, encoding="utf-8", newline="\n") as f:
        return [line.rstrip("\n").rstrip("\r") for line in f]


def score(hyp_path: Path, ref_path: Path) -> dict:
    """Corpus BLEU (13a) and chrF of a hypothesis file against a reference file."""
    hyps, refs = read_lines(hyp_path), read_lines(ref_path)
    if len(hyps) != len(refs):
        raise ValueError(f"{hyp_path}: {len(hyps)} lines, {ref_path}: {len(refs)}")
    bleu, chrf = sacrebleu.BLEU(tokenize="13a"), sacrebleu.CHRF()
    return {
        "bleu": round(bleu.corpus_score(hyps, [refs]).score, 2),
        "chrf": round(chrf.corpus_score(hyps, [refs]).score, 2),
        "lines": len(hyps),
        "signature": f"{bleu.get_signature()} / {chrf.get_signature()}",
    }


def timed(command: list[str], log: Path) -> tuple[float, int]:
    """Run ``command`` with its output in ``log``; its wall time in seconds and exit status."""
    start = time.perf_counter()
    with open(log, "w") as handle:
        status = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT).returncode
    return round(time.perf_counter() - start, 1), status


def write_yaml(settings: dict, path: Path) -> Path:
    """Write a JoeyNMT config (plain YAML, keys in the order given)."""
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


def decode_settings(settings: dict, beam: int, checkpoint: Path) -> dict:
    """JoeyNMT's training config turned into one that decodes the dev split alone."""
    decode = copy.deepcopy(settings)
    decode["data"].pop("test", None)
    decode["testing"].update(beam_size=beam, load_model=str(checkpoint))
    return decode


def joeynmt_epoch_stats(log_text: str) -> dict:
    """Target tokens and seconds of the epoch as JoeyNMT logs them, and their rate."""
    match = JOEY_EPOCH.search(log_text)
    if match is None:
        return {}
    tokens, seconds = int(match.group(1)), float(match.group(2))
    return {"logged_tokens": tokens, "logged_train_s": round(seconds, 1),
            "logged_tokens_per_s": round(tokens / seconds, 1) if seconds else None}  # fmt: skip


def run_joeynmt(python: str, settings: dict, out: Path, beams: list[int]) -> dict:
    """Train JoeyNMT for one epoch, decode the dev split with each beam, return the results."""
    model_dir = Path(settings["training"]["model_dir"])
    config = write_yaml(settings, out / "joeynmt_1epoch.yaml")
    seconds, status = timed([python, "-m", "joeynmt", "train", str(config), "--skip-test"],
                            out / "joeynmt_epoch.log")  # fmt: skip
    result = {"epoch_s": seconds, **joeynmt_epoch_stats(_text(out / "joeynmt_epoch.log"))}
    checkpoint = model_dir / "latest.ckpt"
    if status != 0 or not checkpoint.exists():
        return {**result, "error": f"training failed (exit {status}), see joeynmt_epoch.log"}
    checkpoint = checkpoint.resolve()
    result["decoding"] = {}
    for beam in beams:
        decode = write_yaml(
            decode_settings(settings, beam, checkpoint), out / f"joeynmt_decode_beam{beam}.yaml"
        )
        prefix, log = out / f"joeynmt_beam{beam}", out / f"joeynmt_decode_beam{beam}.log"
        seconds, status = timed(
            [python, "-m", "joeynmt", "test", str(decode), "-o", str(prefix)], log
        )
        own = JOEY_DEV_BLEU.search(_text(log))
        result["decoding"][str(beam)] = _scored(
            Path(f"{prefix}.dev"), Path(settings["data"]["dev"] + ".es"), seconds, status, log,
            joeynmt_own_bleu=float(own.group(1)) if own else None,
        )  # fmt: skip
    return result


def run_ours(
    data: Path, out: Path, beams: list[int], extra: list[str], rate_of: Callable[[Path], float]
) -> dict:
    """Train ``experiment=bible_bahdanau`` for one epoch, decode the dev split with each beam.

    ``extra``: more overrides of the training; ``rate_of``: the run folder's logged rate.
    """
    run_dir, bin_dir = out / "ours_epoch", Path(sys.executable).parent
    command = [
        str(bin_dir / "seq2seq-train"), "experiment=bible_bahdanau", "trainer.max_epochs=1",
        "test=false", "trainer.limit_val_batches=0", "trainer.enable_progress_bar=false",
        f"hydra.run.dir={run_dir}", f"data.dir={data}", *extra,
    ]  # fmt: skip
    seconds, status = timed(command, out / "ours_epoch.log")
    rate = rate_of(run_dir)
    result = {"epoch_s": seconds, "logged_tokens_per_s": round(rate, 1) if rate else None}
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    if status != 0 or not checkpoint.is_file():
        return {**result, "error": f"training failed (exit {status}), see ours_epoch.log"}
    result["decoding"] = {}
    for beam in beams:
        hyp, log = out / f"ours_beam{beam}.dev", out / f"ours_decode_beam{beam}.log"
        seconds, status = timed(
            [
                str(bin_dir / "seq2seq-translate"), str(checkpoint), "--beam", str(beam),
                "--length-penalty", str(LENGTH_PENALTY), "--batch-size", str(DECODE_BATCH),
                "-i", str(data / "dev.en"), "-o", str(hyp),
            ],
            log,
        )  # fmt: skip
        result["decoding"][str(beam)] = _scored(hyp, data / "dev.es", seconds, status, log)
    return result


def _text(path: Path) -> str:
    return path.read_text(errors="replace") if path.is_file() else ""


def _scored(hyp: Path, ref: Path, seconds: float, status: int, log: Path, **more) -> dict:
    """One decoding's wall time and scores, or why there are none."""
    entry = {"decode_s": seconds, "hypotheses": str(hyp), **more}
    if status != 0 or not hyp.is_file():
        return {**entry, "error": f"decoding failed (exit {status}), see {log.name}"}
    try:
        return {**entry, **score(hyp, ref)}
    except ValueError as err:
        return {**entry, "error": str(err)}


def epoch_phase(
    python: str,
    settings: dict,
    data: Path,
    out: Path,
    beams: list[int],
    extra: list[str],
    rate_of: Callable[[Path], float],
) -> dict:
    """Both toolkits' epoch and decodings, JoeyNMT first; see :func:`run_ours` for the rest."""
    joey = run_joeynmt(python, settings, out, beams)
    print(f"JoeyNMT epoch: {_summary(joey)}", flush=True)
    ours = run_ours(data, out, beams, extra, rate_of)
    print(f"seq2seq epoch: {_summary(ours)}", flush=True)
    return {"joeynmt": joey, "seq2seq": ours}


def _summary(result: dict) -> str:
    parts = [f"{result['epoch_s']} s"]
    for beam, entry in result.get("decoding", {}).items():
        scores = entry.get("error") or f"BLEU {entry['bleu']}, chrF {entry['chrf']}"
        parts.append(f"beam {beam}: {scores} ({entry['decode_s']} s)")
    if "error" in result:
        parts.append(result["error"])
    return "; ".join(parts)


def table(quality: dict) -> str:
    """A Markdown table of the epoch phase, one row per toolkit and beam."""
    rows = [
        "| toolkit | epoch (s) | beam | BLEU | chrF | decoding (s) |",
        "|---|---|---|---|---|---|",
    ]
    for name, result in quality.items():
        for beam, entry in result.get("decoding", {}).items():
            rows.append(
                f"| {name} | {result['epoch_s']} | {beam} | {entry.get('bleu', '-')} | "
                f"{entry.get('chrf', '-')} | {entry['decode_s']} |"
            )
    return "\n".join(rows)
