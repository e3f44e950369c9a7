"""``seq2seq-compare`` on two tiny models trained through the real configs (attention and
fixed-vector), and the plotting functions on fixed data."""

from __future__ import annotations

import contextlib
import csv
import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import open_dict
from PIL import Image

from seq2seq.cli import compare
from seq2seq.cli.train import train
from seq2seq.search.decode import DecodeConfig
from seq2seq.translation.metrics import BucketScore, bleu_by_source_length
from seq2seq.translation.plots import plot_alignment, plot_bleu_by_length
from seq2seq.translation.translator import Translator
from tests.conftest import compose_config

EDGES = (0, 10, 20, 30)


def _train(base: Path, data: Path, run: str, *overrides: str) -> Path:
    cfg = compose_config(base, f"data.dir={data}", "trainer.max_epochs=1", "test=false", *overrides)
    with open_dict(cfg):
        cfg.run_dir = str(base / run)  # the run folder names the model by default
    best = train(cfg)["best_checkpoint"]
    assert best, "the tiny run saved no checkpoint"
    return Path(best)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    base = tmp_path_factory.mktemp("compare")
    data = base / "data"  # shared: the second run reuses the corpus the first one wrote
    # One thread: these models are tiny, and on a busy 2-core machine two spinning OpenMP
    # threads made this module take 40-100 s instead of 5 s (measured).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield {
            "data": data,
            "rnnsearch": _train(base, data, "rnnsearch"),
            "rnnenc": _train(base, data, "rnnenc", "model/decoder=cho"),
        }
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def compared(models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("out")
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        compare.main(
            [
                str(models["rnnsearch"]),
                str(models["rnnenc"]),
                "--src",
                str(models["data"] / "test.src"),
                "--ref",
                str(models["data"] / "test.tgt"),
                "--out",
                str(out),
                "--edges",
                ",".join(map(str, EDGES)),
                "--beam",
                "2",
            ]
        )
    return {"out": out, "stdout": stdout.getvalue(), "stderr": stderr.getvalue()}


def _assert_png(path: Path, min_side: int = 100) -> tuple[int, int]:
    assert path.is_file(), path
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()
        width, height = image.size
    assert width >= min_side and height >= min_side
    return width, height


def test_writes_every_file_with_default_names(compared: dict) -> None:
    out = compared["out"]
    for name in ("bleu_by_length.csv", "bleu_by_length.md", "bleu_by_length.png"):
        assert (out / name).is_file(), name
    for name in ("rnnsearch", "rnnenc"):
        assert (out / f"hyp.{name}.txt").is_file()
    assert str(out) in compared["stdout"]


def test_csv_matches_bleu_recomputed_from_the_hypothesis_files(
    compared: dict, models: dict[str, Path]
) -> None:
    out, data = compared["out"], models["data"]
    sources = (data / "test.src").read_text(encoding="utf-8").splitlines()
    refs = (data / "test.tgt").read_text(encoding="utf-8").splitlines()
    with (out / "bleu_by_length.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["model", "bucket", "low", "high", "sentences", "bleu", "chrf"]
    assert len(rows) == 2 * (len(EDGES))  # (model, bucket): len(EDGES) - 1 closed + 1 open
    for name in ("rnnsearch", "rnnenc"):
        hyps = (out / f"hyp.{name}.txt").read_text(encoding="utf-8").splitlines()
        assert len(hyps) == len(sources)
        expected = bleu_by_source_length(sources, hyps, refs, EDGES)
        got = [r for r in rows if r["model"] == name]
        assert [r["bucket"] for r in got] == [b.label for b in expected]
        assert [int(r["sentences"]) for r in got] == [b.sentences for b in expected]
        for row, bucket in zip(got, expected, strict=True):
            assert row["high"] == ("" if bucket.high is None else str(bucket.high))
            for key in ("bleu", "chrf"):
                if getattr(bucket, key) is None:
                    assert row[key] == ""
                else:
                    assert float(row[key]) == pytest.approx(getattr(bucket, key))


def test_markdown_table_has_one_column_per_model_and_an_all_row(compared: dict) -> None:
    table = (compared["out"] / "bleu_by_length.md").read_text(encoding="utf-8")
    lines = table.splitlines()
    assert lines[0] == (
        "| source length | sentences | rnnsearch BLEU | rnnsearch chrF"
        " | rnnenc BLEU | rnnenc chrF |"
    )
    assert lines[1] == "| --- | ---: | ---: | ---: | ---: | ---: |"
    assert [row.split(" | ")[0] for row in lines[2:7]] == [
        "| 0-10",
        "| 10-20",
        "| 20-30",
        "| 30+",
        "| all",
    ]
    assert len(lines[6].split(" | ")) == 6  # all, sentences, then BLEU and chrF per model
    assert lines[0] in compared["stdout"] and "| all |" in compared["stdout"]


def test_pngs_are_images_and_heatmaps_only_for_the_attention_model(compared: dict) -> None:
    out = compared["out"]
    _assert_png(out / "bleu_by_length.png")
    heatmaps = sorted(out.glob("alignment.*.png"))
    assert len(heatmaps) == 3
    assert all(p.name.startswith("alignment.rnnsearch.") for p in heatmaps)
    for path in heatmaps:
        _assert_png(path)
    assert "rnnenc: no attention" in compared["stderr"]


def test_heatmap_lines_and_names(models: dict[str, Path], tmp_path: Path, capsys) -> None:
    compare.main(
        [
            str(models["rnnsearch"]),
            "--src",
            str(models["data"] / "test.src"),
            "--ref",
            str(models["data"] / "test.tgt"),
            "--out",
            str(tmp_path),
            "--names",
            "attn",
            "--heatmap-lines",
            "2,5",
            "--beam",
            "1",
        ]
    )
    assert sorted(p.name for p in tmp_path.glob("alignment.*")) == [
        "alignment.attn.2.png",
        "alignment.attn.5.png",
    ]
    assert "| attn BLEU |" in capsys.readouterr().out


def test_alignment_is_cropped_to_the_real_source(models: dict[str, Path]) -> None:
    # Decoded in one batch with a much longer sentence, the short one's attention rows span
    # the padded length: the crop must keep exactly its own tokens, whose weights sum to 1.
    translator = Translator.from_checkpoint(
        models["rnnsearch"], decode_config=DecodeConfig(beam_size=2, return_attention=True)
    )
    test = (models["data"] / "test.src").read_text(encoding="utf-8").splitlines()
    sentences = [min(test, key=lambda s: len(s.split())), max(test, key=lambda s: len(s.split()))]
    short = translator.translate_nbest(sentences, 1)[0][0]
    length = len(sentences[0].split())  # a word tokenizer: one token per word
    assert short.attention is not None and short.attention.shape[1] > length
    weights, src, tgt = compare.alignment(translator, sentences[0], short)
    assert len(src) == length
    assert tuple(weights.shape) == (len(tgt), len(src))
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(len(tgt)), atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ckpt": "missing.ckpt"}, "missing.ckpt: no such file"),
        ({"src": "missing.src"}, "--src"),
        ({"ref": "short.tgt"}, "has 30 lines but"),
        ({"extra": ["--names", "a", "b", "c"]}, "--names gives 3 names for 2 checkpoints"),
        ({"extra": ["--names", "a", "a"]}, "--names must be distinct"),
        ({"extra": ["--edges", "0,20,10"]}, "--edges must be non-negative and strictly increasing"),
        ({"extra": ["--edges", "0,ten"]}, "--edges must be comma-separated integers"),
        ({"extra": ["--heatmap-lines", "0,31"]}, "--heatmap-lines must be between 1 and 30"),
    ],
)
def test_errors_exit_with_a_clear_message(
    models: dict[str, Path], tmp_path: Path, capsys, change: dict, message: str
) -> None:
    data = models["data"]
    short = tmp_path / "short.tgt"
    short.write_text("".join((data / "test.tgt").read_text().splitlines(True)[:5]))
    ckpt = tmp_path / change["ckpt"] if "ckpt" in change else models["rnnenc"]
    src = tmp_path / change["src"] if "src" in change else data / "test.src"
    ref = tmp_path / change["ref"] if "ref" in change else data / "test.tgt"
    argv = [str(models["rnnsearch"]), str(ckpt), "--src", str(src), "--ref", str(ref)]
    with pytest.raises(SystemExit) as exit_info:
        compare.main([*argv, "--out", str(tmp_path / "out"), *change.get("extra", [])])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing decoded or written before the checks


def test_default_names_from_run_folders() -> None:
    hydra = Path("runs/synthetic_cho/2026-11-26_07-08-27/checkpoints/epoch007.ckpt")
    assert compare.default_name(hydra) == "synthetic_cho"
    assert compare.default_name(Path("runs/multi/0_debug/checkpoints/last.ckpt")) == "0_debug"
    assert compare.default_name(Path("elsewhere/model.ckpt")) == "model"
    same = [Path("a/run/checkpoints/last.ckpt"), Path("b/run/checkpoints/last.ckpt")]
    assert compare.model_names(same, None) == ["run", "run-2"]


def test_pick_lines_spreads_over_lengths_and_includes_the_longest() -> None:
    sources = ["a " * n for n in (5, 1, 9, 3, 7)] + [""]
    assert compare.pick_lines(sources, 2) == [0, 2]  # the middle length (5) and the longest (9)
    assert compare.pick_lines(sources, 10) == [0, 1, 2, 3, 4]  # never the empty line
    assert compare.pick_lines(sources, 0) == []


def test_plot_bleu_by_length(tmp_path: Path) -> None:
    results = {
        "attention": [BucketScore(0, 10, 4, 90.0), BucketScore(10, None, 2, 80.0)],
        "fixed": [BucketScore(0, 10, 4, 60.0), BucketScore(10, None, 2, None)],  # empty: a gap
    }
    path = plot_bleu_by_length(results, tmp_path / "fig.png")
    assert path == tmp_path / "fig.png"
    _assert_png(path, min_side=300)
    with pytest.raises(ValueError, match="has buckets"):
        plot_bleu_by_length({**results, "other": results["fixed"][:1]}, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="no models"):
        plot_bleu_by_length({}, tmp_path / "none.png")


def test_plot_alignment_grows_with_the_sentences(tmp_path: Path) -> None:
    small = plot_alignment(np.eye(3), ["a", "b", "c"], ["x", "y", "z"], tmp_path / "s.png")
    weights = torch.softmax(torch.randn(12, 20), dim=1)  # a tensor works as well as an array
    src, tgt = [f"s{i}" for i in range(20)], [f"t{i}" for i in range(12)]
    large = plot_alignment(weights, src, tgt, tmp_path / "l.png", title="big")
    small_size, large_size = _assert_png(small), _assert_png(large)
    assert large_size[0] > small_size[0] and large_size[1] > small_size[1]
    with pytest.raises(ValueError, match=r"expected \(target, source\) \(3, 2\)"):
        plot_alignment(np.eye(3), ["a", "b"], ["x", "y", "z"], tmp_path / "bad.png")


def test_importing_the_cli_does_not_import_matplotlib() -> None:
    code = "import sys, seq2seq.cli.compare; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
