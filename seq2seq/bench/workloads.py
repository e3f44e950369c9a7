"""The models the benchmark runs and the synthetic batches it feeds them.

Each workload is an experiment config of ``conf/`` (so the benchmark measures what
``seq2seq-train`` would build) plus the vocabulary sizes and length statistics of its corpus.
Token ids are random: speed does not depend on which words a sentence holds, only on how
long it is, and lengths are drawn to match the corpus (Bible verses: about 28 subword tokens
median, up to 100).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from seq2seq.captioning.dataset import CaptionBatch
from seq2seq.config import compose_train_config
from seq2seq.data.padding import pad_targets
from seq2seq.data.sampler import BucketBatchSampler
from seq2seq.data.tokenizer import PAD, WordTokenizer
from seq2seq.training.module import Seq2SeqModule
from seq2seq.translation.dataset import Batch, Example, collate


@dataclass(frozen=True)
class Workload:
    """One model to benchmark.

    Attributes:
        name: the name used on the command line and in the report.
        overrides: Hydra overrides of ``seq2seq-train``'s config that select the model.
        task: ``translation`` or ``captioning``.
        src_vocab: source vocabulary size (translation).
        tgt_vocab: target vocabulary size.
        median_len: median target length in tokens (and source length for translation).
        max_len: longest sentence or caption.
        features: captioning from cached CNN features rather than pixels.
        gpu_only: left out of the default run on a CPU (too slow to be worth waiting for).
        named_only: run only when named (``--models``), e.g. for the ablation.
    """

    name: str
    overrides: tuple[str, ...]
    task: str
    tgt_vocab: int
    median_len: float
    max_len: int
    src_vocab: int = 0
    features: bool = False
    gpu_only: bool = False
    named_only: bool = False
    description: str = field(default="", compare=False)


#: Bible-size models: embeddings 256, GRUs 256 (per direction), vocabularies of 8,000.
BIBLE = dict(src_vocab=8000, tgt_vocab=8000, median_len=28.0, max_len=100)
#: COCO captions: about 11 words, at most 20; a word vocabulary of about 10,000.
COCO = dict(tgt_vocab=10000, median_len=11.0, max_len=20)
#: The paper's pretrained CNN would be downloaded: speed is the same with random weights.
NO_DOWNLOAD = ("model.encoder.weights=null",)

WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload(
            "bible_bahdanau",
            ("experiment=bible_bahdanau",),
            "translation",
            description="RNNsearch, Bible size (emb 256, BiGRU 2x256, dec 256, vocab 8k)",
            **BIBLE,
        ),
        Workload(
            "bible_cho",
            ("experiment=bible_cho",),
            "translation",
            description="RNN encoder-decoder, Bible size (emb 256, GRU 256, vocab 8k)",
            **BIBLE,
        ),
        Workload(
            "coco_sat_features",
            ("experiment=coco_sat", *NO_DOWNLOAD),
            "captioning",
            features=True,
            description="Show, Attend and Tell on cached VGG-19 14x14x512 features",
            **COCO,
        ),
        Workload(
            "coco_nic_features",
            ("experiment=coco_nic", *NO_DOWNLOAD),
            "captioning",
            features=True,
            named_only=True,
            description="Show and Tell (LSTM decoder, no attention) on cached CNN features",
            **COCO,
        ),
        Workload(
            "coco_sat_pixels",
            ("experiment=coco_sat", *NO_DOWNLOAD),
            "captioning",
            description="Show, Attend and Tell from 224x224 pixels (frozen VGG-19 forward)",
            **COCO,
        ),
        Workload(
            "rnnsearch50",
            ("experiment=wmt14_rnnsearch50",),
            "translation",
            src_vocab=30004,
            tgt_vocab=30004,
            median_len=26.0,
            max_len=50,
            gpu_only=True,
            description="RNNsearch-50, the paper's config (emb 620, 1000 units, vocab 30k)",
        ),
    )
}


def compose_config(overrides: Sequence[str]) -> DictConfig:
    """``seq2seq-train``'s config with ``overrides``, as the command line would compose it."""
    return compose_train_config(overrides)


def build_module(workload: Workload, cfg: DictConfig) -> Seq2SeqModule:
    """The Lightning module ``seq2seq-train`` would build, with synthetic vocabularies."""
    from hydra.utils import instantiate

    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    optimizer = instantiate(cfg.optimizer)
    tgt = WordTokenizer([f"t{i}" for i in range(workload.tgt_vocab - 4)])
    if workload.task == "captioning":
        from seq2seq.captioning.module import CaptioningModule

        return CaptioningModule(model_cfg, tgt, optimizer, meteor=False)
    from seq2seq.translation.module import TranslationModule

    src = WordTokenizer([f"s{i}" for i in range(workload.src_vocab - 4)])
    return TranslationModule(model_cfg, src, tgt, optimizer)


def draw_lengths(n: int, median: float, max_len: int, generator: torch.Generator) -> Tensor:
    """``(n,)`` log-normal lengths with the given median, within ``[1, max_len]``."""
    lengths = torch.exp(torch.randn(n, generator=generator) * 0.45 + math.log(median))
    return lengths.round().clamp(1, max_len).long()


def translation_batches(
    workload: Workload, cfg: DictConfig, count: int | None, seed: int = 0, pool: int = 2000
) -> list[Batch]:
    """Batches cut as the data loaders cut them (``data.max_tokens`` or ``data.batch_size``)
    from ``pool`` synthetic sentence pairs: ``count`` training batches (shuffled, with
    ``data.sort_groups``), or, with ``count`` None, all of them in length order, as a test
    set is decoded."""
    generator = torch.Generator().manual_seed(seed)
    shuffle = count is not None
    src_len = draw_lengths(pool, workload.median_len, workload.max_len, generator)
    ratio = torch.exp(torch.randn(pool, generator=generator) * 0.15)  # target/source length
    tgt_len = (src_len * ratio).round().clamp(1, workload.max_len).long()
    examples = [
        Example(
            i,
            torch.randint(4, workload.src_vocab, (int(s),), generator=generator),
            torch.randint(4, workload.tgt_vocab, (int(t),), generator=generator),
        )
        for i, (s, t) in enumerate(zip(src_len.tolist(), tgt_len.tolist(), strict=True))
    ]
    data = cfg.data
    sampler = BucketBatchSampler(
        [max(e.src.numel(), e.tgt.numel() + 1) for e in examples],
        max_tokens=data.get("max_tokens"),
        batch_size=None if data.get("max_tokens") else data.get("batch_size"),
        sort_groups=data.get("sort_groups") if shuffle else None,
        shuffle=shuffle,
        seed=seed,
    )
    batches = [collate([examples[i] for i in rows]) for rows in sampler]
    return batches if count is None else batches[:count]


def caption_batches(
    workload: Workload, cfg: DictConfig, module: Seq2SeqModule, count: int, seed: int = 0
) -> list[CaptionBatch]:
    """``count`` batches of ``data.batch_size`` random images with ``captions_per_image``
    captions each, as pixels or as the frozen CNN's cached features."""
    generator = torch.Generator().manual_seed(seed)
    images_per_batch = int(cfg.data.batch_size)
    per_image = int(cfg.data.get("captions_per_image") or 1)
    size = int(cfg.data.image_size)
    batches = []
    for _ in range(count):
        images = torch.rand(images_per_batch, 3, size, size, generator=generator)
        if workload.features:
            with torch.no_grad():
                images = module.model.encoder.extract(images)
        rows = images_per_batch * per_image
        lengths = draw_lengths(rows, workload.median_len, workload.max_len, generator)
        captions = [
            torch.randint(4, workload.tgt_vocab, (int(n),), generator=generator) for n in lengths
        ]
        tgt_in, tgt_out, _ = pad_targets(captions)
        batches.append(
            CaptionBatch(
                images=images,
                tgt_in=tgt_in,
                tgt_out=tgt_out,
                indices=torch.arange(images_per_batch),
                features=workload.features,
                image_rows=torch.arange(images_per_batch).repeat_interleave(per_image),
            )
        )
    return batches


def target_tokens(batch: Batch | CaptionBatch) -> int:
    """Real target tokens of a batch (EOS included, padding not)."""
    return int((batch.tgt_out != PAD).sum())
