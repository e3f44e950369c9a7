"""The corpus-size benchmark runs end to end on a tiny corpus (what it measures is not
asserted: timings belong to docs/benchmarks.md, not to tests)."""

from __future__ import annotations

import json
from pathlib import Path

from seq2seq.bench import corpus_scale

TINY = [
    "experiment=synthetic_bahdanau",
    "data.synthetic=null",
    "data.tokenizer.kind=word",
    "data.max_tokens=200",
    "model.dims.embed=8",
    "model.dims.encoder_hidden=8",
    "model.dims.decoder_hidden=8",
    "model.dims.attention=8",
    "model.dims.maxout=8",
]


def test_replicates_prepares_and_probes_the_first_step(tmp_path: Path, capsys) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for split, n in (("train", 40), ("dev", 5), ("test", 5)):
        for lang in ("src", "tgt"):
            lines = "".join(f"{lang} {split} sentence {i} .\n" for i in range(n))
            (corpus / f"{split}.{lang}").write_text(lines, encoding="utf-8")
    work = tmp_path / "work"
    args = ["--corpus", str(corpus), "--langs", "src,tgt", "--work", str(work)]
    args += ["--copies", "3", "--steps", "7", *[f"--override={o}" for o in TINY]]
    corpus_scale.main(args)
    results = json.loads((work / "results.json").read_text())["results"]
    assert [r["train_pairs"] for r in results] == [120]
    assert (work / "x3" / "train.src").read_text().count("\n") == 120
    for r in results:
        assert r["prepare"]["peak_rss_mb"] > 0 and r["train"]["first_step_s"] > 0
        assert r["train"]["tokens_per_s"] > 0 and r["train"]["first_step_private_mb"] > 0
    table = capsys.readouterr().out
    assert "| 120 |" in table and "| training pairs |" in table
