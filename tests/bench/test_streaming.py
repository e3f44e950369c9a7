"""The streaming benchmark runs end to end on a tiny checkpoint, alone and against the
read-everything translator of commit 9487c0e (what it measures is not asserted: timings
belong to docs/benchmarks.md). That a line is answered before stdin is closed is tested in
tests/cli/test_translate_stream.py."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest

from seq2seq.bench import streaming
from tests.models.test_ensemble import WORDS, model, write_checkpoint

#: The parent of the commit that made seq2seq-translate stream.
BASELINE = "9487c0e"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    """A tiny checkpoint and a 7-line source of its words (no final newline)."""
    checkpoint = write_checkpoint(tmp_path / "model.ckpt", model(3))
    src = tmp_path / "src.txt"
    src.write_text("\n".join(" ".join(WORDS[i : i + 1 + i % 5]) for i in range(7)))
    return checkpoint, src


def run(checkpoint: Path, src: Path, work: Path, *extra: str) -> dict:
    streaming.main(
        ["--checkpoint", str(checkpoint), "--src", str(src), "--work", str(work)]
        + ["--sample-every", "0.2", *extra]
    )
    return json.loads((work / "results.json").read_text())


def test_input_is_repeated_or_cut_to_n_lines(setup: tuple[Path, Path], tmp_path: Path) -> None:
    _, src = setup
    lines = src.read_text().split("\n")
    assert streaming.write_input(src, 3, tmp_path).read_text().splitlines() == lines[:3]
    repeated = streaming.write_input(src, 16, tmp_path)
    assert repeated.read_text().splitlines() == lines * 2 + lines[:2]
    assert streaming.write_input(src, 16, tmp_path).stat().st_mtime == repeated.stat().st_mtime


def test_ours_at_two_sizes(setup: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    checkpoint, src = setup
    work = tmp_path / "work"
    report = run(checkpoint, src, work, "--lines", "50,200")
    assert {"cpu_capability", "cpus", "processor"} <= set(report["machine"])
    results = report["results"]
    assert [(r["tool"], r["lines"]) for r in results] == [("ours", 50), ("ours", 200)]
    for r in results:
        assert math.isfinite(r["lines_per_s"]) and r["lines_per_s"] > 0
        assert math.isfinite(r["peak_rss_mb"]) and r["peak_rss_mb"] > 0
        assert 0 < r["first_line_s"] <= r["wall_s"]
        assert len((work / f"output_ours_{r['lines']}.txt").read_text().splitlines()) == r["lines"]
    assert "rss_samples" not in results[0] and results[1]["rss_samples"]
    out = capsys.readouterr().out
    assert "| ours | 200 |" in out and "| tool | lines | seconds | lines/s |" in out


def test_bad_input_is_one_line(setup: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    checkpoint, src = setup
    for args, message in [
        (["--checkpoint", str(tmp_path / "none.ckpt")], "none.ckpt: no such file"),
        (
            ["--checkpoint", str(checkpoint), "--baseline-tree", str(tmp_path)],
            "no seq2seq/cli/translate.py",
        ),
        (["--checkpoint", str(checkpoint), "--lines", "10,x"], "not lists of integers"),
    ]:
        with pytest.raises(SystemExit) as stop:
            streaming.main([*args, "--src", str(src)])
        assert stop.value.code == 2
        assert capsys.readouterr().err.strip().splitlines()[-1].endswith(message)


def extract(commit: str, into: Path) -> Path:
    """The tree of ``commit`` of this checkout, extracted under ``into``; skips the test when
    git or the commit is unavailable (an archive, a shallow clone)."""
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    found = subprocess.run(
        [git, "-C", str(REPO), "cat-file", "-e", f"{commit}^{{commit}}"], capture_output=True
    )
    if found.returncode != 0:
        pytest.skip(f"commit {commit} is not in this checkout")
    into.mkdir()
    archive = subprocess.run(
        [git, "-C", str(REPO), "archive", commit, "seq2seq"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def test_against_the_read_everything_translator(setup: tuple[Path, Path], tmp_path: Path) -> None:
    tree = extract(BASELINE, tmp_path / "old")
    checkpoint, src = setup
    work = tmp_path / "work"
    args = ["--lines", "20,60", "--baseline-lines", "60", "--baseline-tree", str(tree)]
    results = run(checkpoint, src, work, *args)["results"]
    assert [(r["tool"], r["lines"]) for r in results] == [
        ("ours", 20), ("baseline", 60), ("ours", 60),
    ]  # fmt: skip
    assert all(r["lines_per_s"] > 0 and r["peak_rss_mb"] > 0 for r in results)
    # The same model, greedy: the same translations, whichever translator.
    ours, old = (work / f"output_{tool}_60.txt" for tool in ("ours", "baseline"))
    assert ours.read_text() == old.read_text() and len(ours.read_text().splitlines()) == 60
