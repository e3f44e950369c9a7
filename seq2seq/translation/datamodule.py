"""The Lightning data module for translation: corpus files in, bucketed batches out.

Everything that can be wrong with the data is found in :meth:`TranslationDataModule.prepare`,
before a model is built: missing files, misaligned splits, bad bytes. The corpus is prepared
once into a memory-mapped store (:mod:`seq2seq.translation.prepare`) that later runs, resumes,
DDP ranks and DataLoader workers share. The same code path serves a real corpus and the
built-in synthetic task, which only writes its files first.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from seq2seq.data.loader import batch_loader
from seq2seq.data.sampler import BucketBatchSampler
from seq2seq.data.tokenizer import Tokenizer
from seq2seq.datasets.synthetic import SyntheticConfig, write_synthetic_corpus
from seq2seq.errors import ConfigError
from seq2seq.translation.dataset import collate
from seq2seq.translation.metrics import BLEU_TOKENIZERS
from seq2seq.translation.prepare import DEFAULT_SAMPLE, SPLITS, CorpusFiles, prepare_store
from seq2seq.translation.store import CorpusStore, StoredPairs

log = logging.getLogger(__name__)

FORMATS = ("plain", "tsv")


class TranslationDataModule(pl.LightningDataModule):
    """Parallel corpus ``{dir}/{split}.{lang}`` (plain) or ``{dir}/{split}.tsv`` (tsv).

    Args:
        dir: folder of the corpus files (config key ``data.dir``).
        src_lang: source file suffix (``en`` for ``train.en``).
        tgt_lang: target file suffix.
        format: ``plain`` (two line-aligned files per split) or ``tsv`` (source and target
            columns 0 and 1).
        splits: file prefix of each split (``train``, ``dev``, ``test``).
        synthetic: when set, the built-in synthetic task is first written to ``dir`` with
            these :class:`~seq2seq.datasets.synthetic.SyntheticConfig` values.
        tokenizer: ``kind`` (``sentencepiece`` or ``word``), ``vocab_size``, ``joint``,
            ``model_type`` (``unigram`` or ``bpe``), ``sample`` (training pairs the
            tokenizers learn from, a deterministic sample; null: all).
        max_len: training pairs with more tokens on either side are dropped (and counted).
        max_tokens: tokens per training batch (padded size); or set ``batch_size``.
        batch_size: sentences per training batch, when ``max_tokens`` is null.
        sort_groups: with ``batch_size``, sort by length within random groups of this many
            batches (Bahdanau et al.'s 20 minibatches), not over the whole corpus.
        eval_max_tokens: tokens per validation/test batch.
        encoding_errors: ``strict`` (fail on invalid UTF-8) or ``replace``.
        num_workers: DataLoader worker processes.
        seed: seed of the batch order.
        bleu_tokenize: sacrebleu's BLEU tokenizer: ``13a`` for detokenised text, ``none``
            for text that is tokenised already (the synthetic task).
        store_dir: where prepared corpus stores go (default ``{dir}/prepared``).
        prepare_workers: encoding processes of a preparation (default: the CPUs).
    """

    def __init__(
        self,
        dir: str,
        src_lang: str = "src",
        tgt_lang: str = "tgt",
        format: str = "plain",
        splits: dict[str, str] | None = None,
        synthetic: dict[str, Any] | None = None,
        tokenizer: dict[str, Any] | None = None,
        max_len: int | None = 100,
        max_tokens: int | None = 4000,
        batch_size: int | None = None,
        sort_groups: int | None = None,
        eval_max_tokens: int = 8000,
        encoding_errors: str = "strict",
        num_workers: int = 0,
        seed: int = 0,
        bleu_tokenize: str = "13a",
        store_dir: str | None = None,
        prepare_workers: int | None = None,
    ) -> None:
        super().__init__()
        if format not in FORMATS:
            raise ConfigError(f"data.format must be one of {FORMATS}, got {format!r}")
        self.dir = Path(dir).expanduser()
        self.src_lang, self.tgt_lang, self.format = src_lang, tgt_lang, format
        self.splits = {**{s: s for s in SPLITS}, **(splits or {})}
        self.synthetic = dict(synthetic) if synthetic else None
        self.tokenizer_cfg = {"kind": "sentencepiece", "vocab_size": 8000, "joint": False}
        self.tokenizer_cfg.update(tokenizer or {})
        # Explicit, so that leaving the default out or writing it gives the same store.
        self.tokenizer_cfg.setdefault("sample", DEFAULT_SAMPLE)
        self.max_len = max_len
        if bleu_tokenize not in BLEU_TOKENIZERS:
            raise ConfigError(
                f"data.bleu_tokenize must be one of {BLEU_TOKENIZERS}, got {bleu_tokenize!r}"
            )
        self.bleu_tokenize = bleu_tokenize
        self.max_tokens, self.batch_size = max_tokens, batch_size
        self.sort_groups = sort_groups
        self.eval_max_tokens = eval_max_tokens
        self.encoding_errors = encoding_errors
        self.num_workers = num_workers
        self.seed = seed
        self.store_dir = store_dir
        self.prepare_workers = prepare_workers
        self.store: CorpusStore | None = None
        #: Whether this process prepared the store (False: it reused one).
        self.prepared_here = False
        self.datasets: dict[str, StoredPairs] = {}
        self.src_tokenizer: Tokenizer | None = None
        self.tgt_tokenizer: Tokenizer | None = None

    # --- reading --------------------------------------------------------------------------
    def files(self, split: str) -> tuple[Path, ...]:
        """The file(s) of ``split``."""
        prefix = self.dir / self.splits[split]
        if self.format == "tsv":
            return (prefix.with_name(prefix.name + ".tsv"),)
        return tuple(
            prefix.with_name(f"{prefix.name}.{lang}") for lang in (self.src_lang, self.tgt_lang)
        )

    def corpus_files(self) -> CorpusFiles:
        """Where the splits are and how to read them, for :mod:`seq2seq.translation.prepare`."""
        return CorpusFiles(
            files={split: self.files(split) for split in SPLITS},
            columns=(0, 1) if self.format == "tsv" else None,
            errors=self.encoding_errors,
            described={
                split: f"set by data.dir={self.dir}, data.splits.{split}={self.splits[split]!r}, "
                "data.src_lang/data.tgt_lang"
                for split in SPLITS
            },
        )

    @property
    def store_root(self) -> Path:
        """Where prepared stores go: ``data.store_dir``, or ``prepared/`` beside the corpus."""
        return Path(self.store_dir).expanduser() if self.store_dir else self.dir / "prepared"

    def prepare(self) -> tuple[Tokenizer, Tokenizer]:
        """Write the synthetic task if configured, then open the corpus store, preparing it
        first when no store of these files and settings exists (every split checked, the
        tokenizers trained, every pair encoded: :mod:`seq2seq.translation.prepare`).
        Idempotent; in DDP the first rank to get there prepares and the others wait for it."""
        if self.store is not None:
            return self.store.src_tokenizer, self.store.tgt_tokenizer
        if self.synthetic is not None:
            write_synthetic_corpus(
                self.dir,
                SyntheticConfig(**self.synthetic),
                src_lang=self.src_lang,
                tgt_lang=self.tgt_lang,
            )
        folder, prepared = prepare_store(
            self.store_root, self.corpus_files(), self.tokenizer_cfg, self.prepare_workers
        )
        self.store = CorpusStore(folder)
        self.prepared_here = prepared
        manifest = self.store.manifest
        if prepared:
            log.info("corpus store: %s (prepared in %.1f s)", folder, manifest["seconds"])
        else:
            log.info("corpus store: %s (reused; prepared %s)", folder, manifest["created"])
            for split in SPLITS:
                entry = self.store.split(split)
                log.info(
                    "%s: %d pairs (%d empty dropped)", split, entry["pairs"], entry["dropped_empty"]
                )
        self.src_tokenizer, self.tgt_tokenizer = self.store.src_tokenizer, self.store.tgt_tokenizer
        self._report_vocabularies(
            self.tokenizer_cfg.get("kind"), self.tokenizer_cfg.get("vocab_size")
        )
        return self.src_tokenizer, self.tgt_tokenizer

    def _report_vocabularies(self, kind: str | None, requested: int | None) -> None:
        sizes = {"source": self.src_tokenizer.vocab_size, "target": self.tgt_tokenizer.vocab_size}
        log.info("vocabularies: source %d, target %d", sizes["source"], sizes["target"])
        if kind != "sentencepiece" or requested is None:
            return
        short = [f"{side} {size}" for side, size in sizes.items() if size < requested]
        if short:
            log.warning(
                "data.tokenizer.vocab_size=%d is more than this corpus allows: %s pieces "
                "(lowered to what the corpus fills; data.tokenizer.hard_vocab_limit=true makes "
                "this an error)",
                requested,
                ", ".join(short),
            )

    def setup(self, stage: str | None = None) -> None:
        self.prepare()
        for split in SPLITS:
            if split in self.datasets:
                continue
            # Only training pairs are filtered by length: every dev and test sentence is
            # translated and scored.
            max_len = self.max_len if split == "train" else None
            dataset = self.store.pairs(split, max_len=max_len)
            if dataset.dropped_too_long:
                log.info(
                    "%s: dropped %d pairs longer than %d tokens",
                    split,
                    dataset.dropped_too_long,
                    max_len,
                )
            self.datasets[split] = dataset

    def references(self, split: str) -> Sequence[str]:
        """Reference translations of ``split``, in corpus order (read from the store as they
        are asked for)."""
        self.prepare()
        return self.store.references(split)

    # --- loaders --------------------------------------------------------------------------
    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = self.datasets[split]
        if shuffle:
            sizing = {
                "max_tokens": self.max_tokens,
                "batch_size": self.batch_size,
                "sort_groups": self.sort_groups,
            }
        else:
            sizing = {"max_tokens": self.eval_max_tokens, "batch_size": None, "sort_groups": None}
        sampler = BucketBatchSampler(dataset.lengths, shuffle=shuffle, seed=self.seed, **sizing)
        return batch_loader(dataset, sampler, collate, self.num_workers, train=shuffle)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("dev", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
