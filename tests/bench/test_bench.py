"""``seq2seq-bench`` runs end to end and reports what it promises (its speed is not tested:
timings are for benchmarks, not tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seq2seq.bench.machine import matmul_gflops
from seq2seq.bench.workloads import WORKLOADS, compose_config, draw_lengths, translation_batches
from seq2seq.cli import bench
from seq2seq.runtime import keep_freed_memory

DIMS = ("embed", "encoder_hidden", "decoder_hidden", "attention", "maxout")


def run_bench(capsys, *args: str) -> tuple[dict, str]:
    quick = ["--steps", "1", "--decode-sentences", "4", "--matmul-size", "128"]
    bench.main([*quick, "--matmul-seconds", "0.1", *args])
    captured = capsys.readouterr()
    return json.loads(captured.out), captured.err


@pytest.mark.slow
def test_bench_translation_models_report(capsys) -> None:
    small = ["data.max_tokens=400", *(f"model.dims.{d}=32" for d in DIMS)]
    args = [a for o in small for a in ("--override", o)]
    report, table = run_bench(capsys, "--models", "bible_cho,bible_bahdanau", *args)
    assert report["matmul_gflops"] > 0
    assert report["machine"]["device"] == "cpu"
    # The vector capability is named beside the figures (AVX2 and AVX-512 differ by 2x).
    capability = report["machine"]["cpu_capability"]
    assert capability and f", {capability}, " in table
    for name in ("bible_cho", "bible_bahdanau"):
        r = report["models"][name]
        assert r["train"]["tokens"] > 0 and r["train"]["tokens_per_s"] > 0
        # Forward and backward, 32 units and a vocabulary of 8,000: about 1.5 MFLOP a token.
        assert 5e5 < r["flops_per_token"] < 1e7
        assert r["achieved_gflops"] == pytest.approx(
            r["flops_per_token"] * r["train"]["tokens_per_s"] / 1e9
        )
        assert r["greedy"]["sentences"] >= 4 and r["beam5"]["sentences_per_s"] > 0
        assert r["peak_memory_mib"] > 0
        # Each step compared with a matrix-product rate measured beside it.
        assert len(r["train"]["matmul_gflops_beside"]) == r["train"]["steps"] == 1
        assert r["share_of_matmul"] == pytest.approx(
            r["flops_per_token"] * r["train"]["tokens_per_s"] / 1e9 / r["matmul_gflops_beside"]
        )
        assert name in table
    # The attention model does more per token than the fixed-context one.
    assert (
        report["models"]["bible_bahdanau"]["flops_per_token"]
        > report["models"]["bible_cho"]["flops_per_token"]
    )


@pytest.mark.slow
def test_bench_captioning_with_and_without_cached_features(capsys) -> None:
    small = ["data.batch_size=2", "model.encoder.backbone=resnet18", "data.image_size=64"]
    args = [a for o in small for a in ("--override", o)]
    report, _ = run_bench(capsys, "--models", "coco_sat_features,coco_sat_pixels", *args)
    features, pixels = report["models"]["coco_sat_features"], report["models"]["coco_sat_pixels"]
    # The CNN's forward pass is not counted per token when its features are cached; with a
    # frozen backbone it runs without gradients, but its products still count.
    assert pixels["flops_per_token"] > features["flops_per_token"]
    assert features["greedy"]["sentences"] == 2  # a quarter of 4: one batch of two images


def test_unknown_model_is_refused_with_the_choices() -> None:
    with pytest.raises(SystemExit, match="unknown model.*bible_bahdanau"):
        bench.pick_models("bible_transformer", torch.device("cpu"))


def test_cpu_default_leaves_out_the_gpu_sized_model() -> None:
    names = [w.name for w in bench.pick_models(None, torch.device("cpu"))]
    assert "rnnsearch50" not in names and "bible_bahdanau" in names
    assert [w.name for w in bench.pick_models("all", torch.device("cpu"))] == list(WORKLOADS)


def test_bible_lengths_and_token_batches() -> None:
    lengths = draw_lengths(20_000, 28.0, 100, torch.Generator().manual_seed(0))
    assert lengths.median().item() == pytest.approx(28, abs=1)
    assert lengths.min() >= 1 and lengths.max() <= 100
    workload = WORKLOADS["bible_bahdanau"]
    cfg = compose_config(workload.overrides)
    batches = translation_batches(workload, cfg, 5)
    assert len(batches) == 5
    for b in batches:  # cut by the config's max_tokens, as training cuts them
        assert b.src.numel() <= cfg.data.max_tokens or b.src.size(0) == 1


def test_matmul_rate() -> None:
    assert matmul_gflops(torch.device("cpu"), size=64, seconds=0.05) > 0


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="samples /proc")
def test_peak_memory_sees_a_block_freed_inside_the_block() -> None:
    # In a fresh process, whose allocator has no freed memory to reuse: the peak must rise by
    # the 256 MiB block above the memory held before, though the block is gone at the end.
    code = (
        "import torch\n"
        "from seq2seq.bench.machine import PeakMemory, _rss_bytes\n"
        "before = _rss_bytes() / 2**20\n"
        "with PeakMemory(torch.device('cpu')) as memory:\n"
        "    block = torch.ones(64, 2**20)\n"
        "    del block\n"
        "print(memory.peak_mib - before)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert 200 < float(out.stdout) < 400


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_memory_is_kept_for_reuse() -> None:
    assert keep_freed_memory()
    # Still a working allocator afterwards: a large block is served and freed.
    assert torch.ones(2**24).sum().item() == 2**24


def test_freed_memory_setting_can_be_turned_off(monkeypatch) -> None:
    monkeypatch.setenv("SEQ2SEQ_KEEP_FREED_MEMORY", "0")
    assert not keep_freed_memory()
