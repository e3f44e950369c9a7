"""The models a server holds, and one batch call of each turned into JSON-ready results.

A server holds at most one translation and one captioning checkpoint; which is which is read
from the checkpoint itself (the task stored by ``seq2seq-train``, see
:mod:`seq2seq.checkpoint`). Search settings that change the beam (its size, the length
penalty) are the server's, so every item of a batch is decoded in one call; what a request
chooses (how many hypotheses, whether to return attention) is cut from that call's results.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from seq2seq.captioning.captioner import Caption, Captioner
from seq2seq.checkpoint import CHECKPOINT_KEY, CheckpointError, load_checkpoint, read_checkpoint
from seq2seq.data.tokenizer import UNK
from seq2seq.search.decode import DecodeConfig
from seq2seq.translation.translator import Translation, Translator

TASKS = ("translation", "captioning")

#: Decimals kept of attention weights: the page draws 256 grey levels at most.
WEIGHT_DECIMALS = 4


def checkpoint_task(path: str | Path) -> str:
    """The task (``translation`` or ``captioning``) a checkpoint was trained for.

    Raises:
        CheckpointError: the file is missing, unreadable or not written by ``seq2seq-train``.
    """
    ckpt = read_checkpoint(path)
    payload = ckpt.get(CHECKPOINT_KEY) if isinstance(ckpt, dict) else None
    task = payload.get("task") if isinstance(payload, dict) else None
    if task not in TASKS:
        raise CheckpointError(
            f"checkpoint {path} was not written by seq2seq-train (no task in its "
            f"'{CHECKPOINT_KEY}' entry)"
        )
    return task


@dataclass(frozen=True)
class TextItem:
    """One text of a ``/translate`` request."""

    text: str
    nbest: int = 1
    alignment: bool = False


@dataclass(frozen=True)
class ImageItem:
    """One decoded image of a ``/caption`` request."""

    image: Image.Image
    nbest: int = 1
    attention: bool = False


def _weights(matrix: Any) -> list[list[float]]:
    return [[round(float(w), WEIGHT_DECIMALS) for w in row] for row in matrix.tolist()]


class TranslationModel:
    """A :class:`Translator` run on batches of :class:`TextItem`.

    Args:
        translator: built with ``return_attention=True`` in its decode config, so that
            alignments can be returned without a second search.
    """

    def __init__(self, translator: Translator) -> None:
        self.translator = translator

    @classmethod
    def load(
        cls, path: str | Path, *, beam: int, device: str = "cpu", max_src_len: int = 250
    ) -> TranslationModel:
        config = DecodeConfig(beam_size=beam, return_attention=True)
        loaded = load_checkpoint(path, task="translation")
        return cls(Translator(loaded, decode_config=config, device=device, max_src_len=max_src_len))

    @property
    def beam(self) -> int:
        return self.translator.decode_config.beam_size

    def run(self, items: Sequence[TextItem]) -> list[list[dict[str, Any]]]:
        """One search over every item; per item, its hypotheses as JSON-ready dicts."""
        nbest = max(item.nbest for item in items)
        results = self.translator.translate_nbest(
            [item.text for item in items], nbest=nbest, batch_size=len(items)
        )
        return [
            [self._hypothesis(item, hyp) for hyp in hyps[: item.nbest]]
            for item, hyps in zip(items, results, strict=True)
        ]

    def source_tokens(self, text: str) -> list[str]:
        """The source pieces the model read, as the translator cuts and pads them."""
        tokenizer = self.translator.loaded.src_tokenizer
        ids = tokenizer.encode(text)[: self.translator.max_src_len] or [UNK]
        return [tokenizer.id_to_piece(i) for i in ids]

    def _hypothesis(self, item: TextItem, hyp: Translation) -> dict[str, Any]:
        out: dict[str, Any] = {"text": hyp.text, "logprob": round(hyp.logprob, 4)}
        if item.alignment:
            out["alignment"] = self._alignment(item.text, hyp)
        return out

    def _alignment(self, text: str, hyp: Translation) -> dict[str, Any] | None:
        """Target × source attention, cut to the sentence's own source length (the batch
        pads every source to the longest); None for a model without attention or an empty
        text."""
        if hyp.attention is None or not text.strip():
            return None
        source = self.source_tokens(text)
        rows = hyp.attention[:, : len(source)]
        # A row more than tokens is the step that generated the end of the sentence.
        target = hyp.tokens + ["</s>"] * (rows.shape[0] - len(hyp.tokens))
        return {"source_tokens": source, "target_tokens": target, "weights": _weights(rows)}


class CaptioningModel:
    """A :class:`Captioner` run on batches of :class:`ImageItem`."""

    def __init__(self, captioner: Captioner, *, beam: int) -> None:
        self.captioner = captioner
        self.beam = beam

    @classmethod
    def load(
        cls, path: str | Path, *, beam: int, device: str = "cpu", max_image_pixels: int
    ) -> CaptioningModel:
        captioner = Captioner.from_checkpoint(
            path, device=device, max_image_pixels=max_image_pixels
        )
        return cls(captioner, beam=beam)

    def run(self, items: Sequence[ImageItem]) -> list[dict[str, Any]]:
        """One search over every image; per image, its captions and, when asked, the picture
        the model saw with each word's attention over its grid."""
        nbest = max(item.nbest for item in items)
        results = self.captioner.caption(
            [item.image for item in items],
            beam_size=max(self.beam, nbest),
            nbest=nbest,
            return_attention=any(item.attention for item in items),
            batch_size=len(items),
        )
        return [self._image(item, captions) for item, captions in zip(items, results, strict=True)]

    def _image(self, item: ImageItem, captions: list[Caption]) -> dict[str, Any]:
        kept = captions[: item.nbest]
        out: dict[str, Any] = {"captions": [self._caption(item, c) for c in kept]}
        if item.attention:
            grid = next((c.grid for c in kept if c.grid is not None), None)
            out["grid"] = None if grid is None else list(grid)
            # The attention grid lies over the picture as resized (and cropped) for the model,
            # not over the upload: send that picture to draw on.
            out["input_image"] = _png_data_url(self.captioner.input_image(item.image))
        return out

    def _caption(self, item: ImageItem, caption: Caption) -> dict[str, Any]:
        out: dict[str, Any] = {
            "text": caption.text,
            "words": caption.words,
            "logprob": round(caption.logprob, 4),
        }
        if item.attention:
            out["attention"] = None if caption.attention is None else _weights(caption.attention)
        return out


def _png_data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
