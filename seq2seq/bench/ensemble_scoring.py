"""The test-split scorers of :mod:`seq2seq.bench.ensemble_study`, one per task.

A scorer decodes the experiment's test split with one checkpoint or an ensemble of several,
in this process, and scores it with the metrics the task's own test reports:

- translation: BLEU and chrF (sacrebleu, with the experiment's BLEU tokenisation), through
  :class:`~seq2seq.translation.translator.Translator`;
- captioning: CIDEr-D and BLEU-4 (with BLEU-1..3 in the JSON) exactly as the captioning
  module's test computes them, :func:`seq2seq.captioning.metrics.caption_scores` over all
  references of each test image, CIDEr-D's document frequencies taken from the test
  references, through :class:`~seq2seq.captioning.captioner.Captioner` with the experiment's
  test decoding (``decode.test``: length penalty, no ``<unk>``), its caption length limit
  and its image preprocessing (both recorded in the checkpoints). METEOR is not scored.

The captioner computes the CNN features from the images, while training tests on the
float16 feature cache, so a single model's figures can differ from its training run's test
line in the last digits.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig

from seq2seq.captioning.captioner import Captioner
from seq2seq.captioning.metrics import caption_scores
from seq2seq.search.decode import DecodeConfig
from seq2seq.translation.metrics import corpus_scores
from seq2seq.translation.translator import Translator


class TranslationScorer:
    """BLEU and chrF of the test split ``data.dir/test.{src,tgt}``."""

    #: (result key, name in the table), the first metric being the headline.
    metrics = (("bleu", "BLEU"), ("chrf", "chrF"))

    def __init__(self, cfg: DictConfig, beam: int) -> None:
        data = Path(str(cfg.data.dir))
        self.src, self.ref = data / f"test.{cfg.data.src_lang}", data / f"test.{cfg.data.tgt_lang}"
        # The BLEU tokenisation the experiment's own test score uses.
        self.bleu_tokenize = str(cfg.data.get("bleu_tokenize", "13a"))
        self.beam = beam

    def __call__(self, checkpoints: list[Path]) -> dict[str, Any]:
        sources = self.src.read_text(encoding="utf-8").splitlines()
        references = self.ref.read_text(encoding="utf-8").splitlines()
        options = {"decode_config": DecodeConfig(beam_size=self.beam)}
        started = time.monotonic()
        translator = Translator.from_checkpoints(checkpoints, **options)
        hypotheses = translator.translate(sources)
        result = corpus_scores(hypotheses, references, self.bleu_tokenize).to_dict()
        result["seconds"] = time.monotonic() - started
        return result


class CaptioningScorer:
    """CIDEr-D and BLEU-4 of the test split of the experiment's captioning data module."""

    metrics = (("cider", "CIDEr-D"), ("bleu4", "BLEU-4"))

    def __init__(self, cfg: DictConfig, beam: int) -> None:
        # The data module the training ran on: it writes the synthetic scenes if they are not
        # there yet, reads the annotations and lists every split's images and references.
        datamodule = instantiate(cfg.data)
        datamodule.prepare()
        records = datamodule.records["test"]
        self.images = [record.path for record in records]
        self.references = datamodule.references("test")
        self.max_image_pixels = cfg.data.get("max_image_pixels")
        self.batch_size = int(cfg.data.get("eval_batch_size") or 16)
        test = cfg.decode.test
        self.options = {
            "beam_size": beam,
            "length_penalty": float(test.get("length_penalty", 1.0)),
            "suppress_unk": bool(test.get("suppress_unk", True)),
        }

    def __call__(self, checkpoints: list[Path]) -> dict[str, Any]:
        started = time.monotonic()
        captioner = Captioner.from_checkpoints(checkpoints, max_image_pixels=self.max_image_pixels)
        captions = captioner.caption(self.images, batch_size=self.batch_size, **self.options)
        hypotheses = [nbest[0].text for nbest in captions]
        scores = caption_scores(hypotheses, self.references, meteor=False)
        result: dict[str, Any] = {**scores.as_dict(), "n_images": scores.n_images}
        result["seconds"] = time.monotonic() - started
        return result


def resolve_beam(cfg: DictConfig, beam: int | None) -> int:
    """``beam``, or when None the experiment's test beam (``decode.test.beam_size``: 5 for
    the translation experiments, 3 for the scenes and emoji)."""
    return int(cfg.decode.test.beam_size) if beam is None else beam


def make_scorer(cfg: DictConfig, beam: int) -> TranslationScorer | CaptioningScorer:
    """The scorer of the composed config's task (``cfg.task.name``), decoding with ``beam``."""
    task = str(cfg.task.name)
    if task == "translation":
        return TranslationScorer(cfg, beam)
    if task == "captioning":
        return CaptioningScorer(cfg, beam)
    raise ValueError(f"task.name={task!r}: the ensemble study scores translation or captioning")
