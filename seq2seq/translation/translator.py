"""A small Python API: load a checkpoint and translate strings.

>>> from seq2seq import Translator
>>> translator = Translator.from_checkpoint("runs/.../checkpoints/last.ckpt")
>>> translator.translate(["the cat sees a dog ."])

``Translator.from_checkpoints([A, B])`` decodes with an ensemble of several models.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from seq2seq.checkpoint import LoadedModel, load_checkpoint, load_checkpoints
from seq2seq.data.sampler import BucketBatchSampler
from seq2seq.data.tokenizer import BOS, EOS, UNK
from seq2seq.search.decode import DecodeConfig, decode
from seq2seq.search.hypothesis import Hypothesis
from seq2seq.translation.dataset import Example, collate

log = logging.getLogger(__name__)


@dataclass
class Translation:
    """One hypothesis: detokenised text, total log-probability, attention ``(T, N)``."""

    text: str
    logprob: float
    tokens: list[str]
    attention: torch.Tensor | None = None


class Translator:
    """Translate with a trained model.

    Args:
        loaded: the model and tokenizers (see :func:`seq2seq.checkpoint.load_checkpoint`).
        decode_config: search settings (beam 5 by default).
        device: where to run (``cpu``, ``cuda``, ...).
        max_src_len: longer inputs are cut to this many tokens, with a warning.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        decode_config: DecodeConfig | None = None,
        device: str | torch.device = "cpu",
        max_src_len: int = 250,
    ) -> None:
        self.loaded = loaded
        self.device = torch.device(device)
        self.model = loaded.model.to(self.device).eval()
        self.decode_config = decode_config or DecodeConfig()
        self.max_src_len = max_src_len

    @classmethod
    def from_checkpoint(cls, path: str | Path, **kwargs: object) -> Translator:
        """Load the checkpoint at ``path`` (safely: ``weights_only=True``)."""
        return cls(load_checkpoint(path, task="translation"), **kwargs)  # type: ignore[arg-type]

    @classmethod
    def from_checkpoints(cls, paths: Sequence[str | Path], **kwargs: object) -> Translator:
        """An ensemble of the checkpoints at ``paths``, decoding as one model (one path: that
        model alone); they must share the source and target tokenizers.

        Raises:
            CheckpointError: a file cannot be used, or two disagree (naming both files).
        """
        loaded = load_checkpoints(list(paths), task="translation")
        return cls(loaded, **kwargs)  # type: ignore[arg-type]

    def translate(self, sentences: Sequence[str], batch_size: int = 64) -> list[str]:
        """Best translation of each sentence; an empty (or blank) sentence gives ``""``."""
        return [nbest[0].text for nbest in self.translate_nbest(sentences, 1, batch_size)]

    def translate_nbest(
        self,
        sentences: Sequence[str],
        nbest: int = 1,
        batch_size: int = 64,
        *,
        first_line: int = 1,
    ) -> list[list[Translation]]:
        """The ``nbest`` best translations of each sentence, best first; sentences of similar
        length are decoded together, ``batch_size`` at a time. ``first_line`` is the number
        the warning about over-long lines gives the first sentence (a chunk of a file starts
        further on). Attention is kept only when the decode config asks for it."""
        config = replace(
            self.decode_config, nbest=nbest, beam_size=max(nbest, self.decode_config.beam_size)
        )
        src_tok = self.loaded.src_tokenizer
        results: list[list[Translation]] = [[Translation("", 0.0, [])] for _ in sentences]
        keep = [i for i, s in enumerate(sentences) if s.strip()]
        if not keep:
            return results
        ids = src_tok.encode_batch([sentences[i] for i in keep])
        long = [keep[j] + first_line for j, x in enumerate(ids) if len(x) > self.max_src_len]
        if long:
            log.warning(
                "%d input lines longer than %d tokens were truncated (lines %s)",
                len(long),
                self.max_src_len,
                ", ".join(map(str, long[:10])) + (" ..." if len(long) > 10 else ""),
            )
        # A line of only unknown characters can still encode to nothing: give it one UNK.
        examples = [
            Example(j, torch.tensor(x[: self.max_src_len] or [UNK]), None)
            for j, x in enumerate(ids)
        ]
        lengths = [len(e.src) for e in examples]
        sampler = BucketBatchSampler(
            lengths, batch_size=batch_size, shuffle=False, num_replicas=1, rank=0
        )
        for batch_indices in sampler:
            batch = collate([examples[i] for i in batch_indices])
            hyps = decode(
                self.model,
                batch.src.to(self.device),
                batch.src_lengths.to(self.device),
                config,
                bos_id=BOS,
                eos_id=EOS,
            )
            for j, nbest_hyps in zip(batch.indices.tolist(), hyps, strict=True):
                results[keep[j]] = [self._to_translation(h) for h in nbest_hyps]
        return results

    def _to_translation(self, hyp: Hypothesis) -> Translation:
        tgt_tok = self.loaded.tgt_tokenizer
        return Translation(
            text=tgt_tok.decode(hyp.tokens),
            logprob=hyp.score,
            tokens=[tgt_tok.id_to_piece(t) for t in hyp.tokens],
            attention=hyp.attention,
        )
