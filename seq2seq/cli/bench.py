"""``seq2seq-bench``: how fast the models train and decode on this machine.

In one process: the device's float32 matrix-product rate (the physical reference), then for
each model its training throughput in target tokens per second, FLOPs per target token
(counted), the achieved GFLOP/s and their share of the reference, greedy and beam decoding
in sentences per second, and peak memory. JSON goes to standard output, a table to standard
error. The models and batches are those of the experiment configs (``conf/experiment``) on
synthetic data of the corpus's lengths; see ``docs/benchmarks.md`` for measured figures.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
from collections.abc import Callable
from typing import Any

import torch

from seq2seq.bench.machine import PeakMemory, describe, matmul_gflops
from seq2seq.bench.measure import (
    flops_per_token,
    make_step,
    profile_steps,
    time_decoding,
    time_training,
    to_device,
)
from seq2seq.bench.workloads import (
    WORKLOADS,
    Workload,
    build_module,
    caption_batches,
    compose_config,
    translation_batches,
)
from seq2seq.runtime import keep_freed_memory


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="seq2seq-bench",
        description="Benchmark training and decoding speed (JSON to stdout, a table to stderr).",
    )
    parser.add_argument(
        "--models",
        default=None,
        help=f"comma-separated, from {', '.join(WORKLOADS)} (default: all but "
        "coco_nic_features, and on a CPU but rnnsearch50), or 'all'",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument(
        "--steps", type=int, default=None, help="timed training steps (default 8 CPU, 50 GPU)"
    )
    parser.add_argument(
        "--decode-sentences",
        type=int,
        default=None,
        help="sentences decoded per search, a quarter as many images (default 256 CPU, 1500 GPU)",
    )
    parser.add_argument("--beam", type=int, default=5, help="beam size (default 5)")
    parser.add_argument(
        "--precision",
        choices=("32", "bf16"),
        default=None,
        help="32 or bf16 autocast (default: bf16 on GPUs, 32 on CPUs)",
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch")
    parser.add_argument("--matmul-size", type=int, default=2048, help="reference matrix size")
    parser.add_argument(
        "--matmul-seconds", type=float, default=2.0, help="time spent on the reference rate"
    )
    parser.add_argument("--no-decode", action="store_true", help="skip the decoding measures")
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="ROWS",
        help="after timing, profile three training steps with torch.profiler and print the "
        "ROWS operators that took the most time (to stderr)",
    )
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a Hydra override of seq2seq-train's config applied to every model "
        "(repeatable), e.g. --override data.max_tokens=8000",
    )
    return parser.parse_args(argv)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("seq2seq-bench: --device cuda asked for, but no CUDA GPU is visible")
    return device


def pick_models(spec: str | None, device: torch.device) -> list[Workload]:
    if spec is None:
        return [
            w
            for w in WORKLOADS.values()
            if not w.named_only and (device.type == "cuda" or not w.gpu_only)
        ]
    if spec == "all":
        return list(WORKLOADS.values())
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        raise SystemExit(
            f"seq2seq-bench: unknown model(s) {', '.join(unknown)}; "
            f"choose from {', '.join(WORKLOADS)}"
        )
    return [WORKLOADS[n] for n in names]


def bench_workload(
    workload: Workload,
    device: torch.device,
    steps: int,
    decode_sentences: int,
    beam: int,
    precision: str,
    decode: bool,
    overrides: list[str],
    reference: Callable[[], float],
    profile_rows: int = 0,
) -> dict[str, Any]:
    """All the measures of one model."""
    cfg = compose_config([*workload.overrides, *overrides])
    torch.manual_seed(0)
    module = build_module(workload, cfg).to(device).train()
    warmup = 2
    if workload.task == "captioning":
        cpu_batches = caption_batches(workload, cfg, module.cpu(), steps + warmup)
        module.to(device)
        # An image costs far more than a sentence to decode from pixels: a quarter as many.
        images = max(1, decode_sentences // 4)
        decode_batches = cpu_batches[: max(1, -(-images // cpu_batches[0].images.size(0)))]
    else:
        cpu_batches = translation_batches(workload, cfg, steps + warmup)
        decode_batches = translation_batches(workload, cfg, None, seed=1, pool=decode_sentences)
    batches = [to_device(b, device) for b in cpu_batches]
    clip = cfg.trainer.get("gradient_clip_val")
    step = make_step(module, clip, precision, device)
    for batch in batches[:warmup]:
        step(batch)
    with PeakMemory(device) as memory:
        train = time_training(step, batches[warmup:], device, reference=reference)
    flops = flops_per_token(module, cpu_batches[warmup], clip)
    achieved = flops * train["tokens_per_s"] / 1e9
    # Each step against the matrix-product rate measured just before it; the median share.
    shares = [
        flops * n / s / 1e9 / rate
        for n, s, rate in zip(
            train["step_tokens"], train["step_seconds"], train["matmul_gflops_beside"], strict=True
        )
    ]
    result: dict[str, Any] = {
        "description": workload.description,
        "config": " ".join([*workload.overrides, *overrides]),
        "parameters": sum(p.numel() for p in module.parameters()),
        "train": train,
        "flops_per_token": flops,
        "achieved_gflops": achieved,
        "matmul_gflops_beside": statistics.median(train["matmul_gflops_beside"]),
        "share_of_matmul": statistics.median(shares),
        "peak_memory_mib": memory.peak_mib,
    }
    if profile_rows:
        print(
            profile_steps(step, batches[warmup : warmup + 3], device, profile_rows), file=sys.stderr
        )
    if decode:
        decode_batches = [to_device(b, device) for b in decode_batches]
        result["greedy"] = time_decoding(module, decode_batches, 1, device, precision)
        result[f"beam{beam}"] = time_decoding(module, decode_batches, beam, device, precision)
    return result


def table(report: dict[str, Any], beam: int) -> str:
    """The report as a short text table."""
    machine = report["machine"]
    chip = machine.get("gpu") or machine["processor"]
    lines = [
        f"device: {machine['device']} ({chip}, {machine.get('cpu_capability', '?')}, "
        f"{machine['threads']} threads), precision {report['precision']}",
        f"float32 matmul reference: {report['matmul_gflops']:.1f} GFLOP/s at the start; "
        "'of mm' compares each training step with the rate measured beside it (median)",
        f"{'model':20s} {'train tok/s':>11s} {'MFLOP/tok':>9s} {'GFLOP/s':>8s} {'of mm':>6s} "
        f"{'greedy s/s':>10s} {f'beam{beam} s/s':>10s} {'peak MiB':>9s}",
    ]
    for name, r in report["models"].items():
        greedy = r.get("greedy", {}).get("sentences_per_s", float("nan"))
        beam_rate = r.get(f"beam{beam}", {}).get("sentences_per_s", float("nan"))
        lines.append(
            f"{name:20s} {r['train']['tokens_per_s']:11.0f} {r['flops_per_token'] / 1e6:9.2f} "
            f"{r['achieved_gflops']:8.1f} {100 * r['share_of_matmul']:5.1f}% "
            f"{greedy:10.1f} {beam_rate:10.1f} {r['peak_memory_mib']:9.0f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    allocator = "heap, freed memory kept" if keep_freed_memory() else "default"
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    gpu = device.type == "cuda"
    precision = args.precision or ("bf16" if gpu else "32")
    steps = args.steps or (50 if gpu else 8)
    sentences = args.decode_sentences or (1500 if gpu else 256)
    models = pick_models(args.models, device)
    reference = matmul_gflops(device, size=args.matmul_size, seconds=args.matmul_seconds)
    print(f"float32 matmul: {reference:.1f} GFLOP/s", file=sys.stderr)
    report: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "seq2seq-bench " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": describe(device),
        "precision": precision,
        "allocator": allocator,
        "matmul_gflops": reference,
        "models": {},
    }

    def beside() -> float:
        # About a third of a second: three products of the reference size, the best kept.
        return matmul_gflops(device, size=args.matmul_size, seconds=0, warmup=1)

    for workload in models:
        print(f"{workload.name}: {workload.description} ...", file=sys.stderr)
        report["models"][workload.name] = bench_workload(
            workload,
            device,
            steps,
            sentences,
            args.beam,
            precision,
            not args.no_decode,
            args.override,
            beside,
            args.profile,
        )
    print(table(report, args.beam), file=sys.stderr)
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
