"""A small Python API for captioning: load a checkpoint and describe images.

>>> from seq2seq.captioning.captioner import Captioner
>>> captioner = Captioner.from_checkpoint("runs/.../checkpoints/last.ckpt")
>>> best = captioner.caption(["images/test_000001.png"])[0][0]
>>> best.text, best.logprob

``Captioner.from_checkpoints([A, B])`` captions with an ensemble of several models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor
from torchvision import transforms

from seq2seq.captioning.images import PixelLimit, load_image, to_rgb
from seq2seq.checkpoint import CheckpointError, LoadedModel, load_checkpoints
from seq2seq.data.tokenizer import BOS, EOS, UNK
from seq2seq.models.encoders.image_input import RESIZE_MODES, input_transform
from seq2seq.search.decode import DecodeConfig, decode_encoded
from seq2seq.search.hypothesis import Hypothesis

#: What :meth:`Captioner.caption` accepts as one image.
ImageInput = str | Path | Image.Image

#: Caption length limit for checkpoints that do not record one (the training default).
DEFAULT_MAX_LEN = 30


@dataclass
class Caption:
    """One generated caption.

    Attributes:
        text: the detokenised caption.
        words: the generated tokens, one per attention row (without BOS and EOS).
        logprob: total log-probability of the caption, EOS included when generated.
        score: the length-normalised score the hypotheses were ranked by.
        attention: ``(L, H*W)`` attention of each generated token over the image grid, with
            ``L = len(words) + 1`` when EOS was generated (its row comes last); None when not
            requested or when the model has no attention (NIC).
        grid: ``(H, W)`` of the attention grid; None whenever ``attention`` is.
    """

    text: str
    words: list[str]
    logprob: float
    score: float
    attention: Tensor | None = None
    grid: tuple[int, int] | None = None


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` → ``cuda`` when available, else ``cpu``; a clear error for a bad name or for
    CUDA requested where there is none (rather than a failure deep inside ``.to()``)."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"unknown device {device!r}; expected cpu, cuda, cuda:1, ...") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available here")
    return resolved


def _image_settings(extra: Mapping[str, Any]) -> tuple[int, str, int]:
    """``(image_size, resize, max_caption_len)`` from a checkpoint's extras, checked."""
    image = extra.get("image")
    if not isinstance(image, Mapping):
        raise ValueError("it records no image preprocessing (extra 'image' entry missing)")
    size, resize = image.get("image_size"), image.get("resize", "crop")
    if isinstance(size, bool) or not isinstance(size, int) or size < 16:
        raise ValueError(f"its image_size is {size!r}; expected an integer >= 16")
    if resize not in RESIZE_MODES:
        raise ValueError(f"its resize mode is {resize!r}; expected one of {RESIZE_MODES}")
    max_len = extra.get("max_caption_len", DEFAULT_MAX_LEN)
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"its max_caption_len is {max_len!r}; expected a positive integer")
    return size, resize, max_len


class Captioner:
    """Caption images with a trained model (NIC or Show-Attend-Tell).

    Args:
        loaded: a captioning model and its tokenizer
            (see :func:`seq2seq.checkpoint.load_checkpoint`).
        device: where to run; None picks ``cuda`` when available, else ``cpu``.
        max_image_pixels: image files with more pixels are refused as possible decompression
            bombs (an :class:`~seq2seq.captioning.images.ImageError` naming the file); None:
            Pillow's limit (about 89 million).

    Raises:
        ValueError: the model is not a captioner, its preprocessing settings are unusable,
            the device is unknown or unavailable, or ``max_image_pixels`` is not positive.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        device: str | torch.device | None = None,
        *,
        max_image_pixels: int | None = None,
    ) -> None:
        self.limit = PixelLimit(max_image_pixels, "max_image_pixels")
        if loaded.task != "captioning":
            raise ValueError(f"the model is a {loaded.task!r} model; expected 'captioning'")
        self.image_size, self.resize, self.max_len = _image_settings(loaded.extra)
        self.loaded = loaded
        self.device = resolve_device(device)
        self.model = loaded.model.to(self.device).eval()
        self.tokenizer = loaded.tgt_tokenizer
        # The exact transform of training, so captions match what validation saw.
        self._transform = input_transform(self.image_size, self.resize)
        # Its geometric part alone gives the picture the CNN sees, for drawing attention on.
        steps = getattr(self._transform, "transforms", [])
        self._geometry = transforms.Compose(
            [t for t in steps if not isinstance(t, transforms.ToTensor | transforms.Normalize)]
        )

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str | torch.device | None = None,
        *,
        max_image_pixels: int | None = None,
    ) -> Captioner:
        """Load the captioning checkpoint at ``path`` (safely: ``weights_only=True``);
        ``device`` and ``max_image_pixels`` as for the constructor.

        Raises:
            CheckpointError: the file is missing, unreadable, not a captioning checkpoint, or
                its contents are inconsistent; the message names the file.
            ValueError: the device is unknown or unavailable.
        """
        return cls.from_checkpoints([path], device=device, max_image_pixels=max_image_pixels)

    @classmethod
    def from_checkpoints(
        cls,
        paths: Sequence[str | Path],
        device: str | torch.device | None = None,
        *,
        max_image_pixels: int | None = None,
    ) -> Captioner:
        """An ensemble of the captioning checkpoints at ``paths``, decoding as one model (one
        path: that model alone). The members must share the tokenizer and the image
        preprocessing (every member sees the same pixels); the first one's caption length
        limit applies.

        Raises:
            CheckpointError: as for :meth:`from_checkpoint`, or two members disagree (the
                message names both files).
            ValueError: the device is unknown or unavailable.
        """
        loaded = load_checkpoints(list(paths), task="captioning", same_extra=("image",))
        for path, member in zip(paths, loaded.members or [loaded], strict=True):
            try:
                # Checked here too (the constructor does it again) so the error names the file.
                _image_settings(member.extra)
            except ValueError as err:
                raise CheckpointError(f"checkpoint {path}: {err}") from err
        return cls(loaded, device=device, max_image_pixels=max_image_pixels)

    # --- images ---------------------------------------------------------------------------
    def _rgb(self, image: ImageInput) -> Image.Image:
        """An upright RGB image from a path (read with :func:`load_image`) or a PIL image."""
        if isinstance(image, str | Path):
            return load_image(image, self.limit)
        if isinstance(image, Image.Image):
            # Same conversion as files get: transparency over white, 16-bit scaled, ...
            return to_rgb(image)
        raise TypeError(f"expected an image path or a PIL.Image.Image, got {type(image).__name__}")

    def input_image(self, image: ImageInput) -> Image.Image:
        """The image resized (and cropped) the way the model sees it: ``S × S`` RGB.

        Attention maps line up with this picture, whatever the resize mode.

        Raises:
            ImageError: a path that cannot be read as an image (the message names it).
        """
        return self._geometry(self._rgb(image))

    def preprocess(self, image: ImageInput) -> Tensor:
        """The model input of one image: a normalised ``(3, S, S)`` float tensor.

        Raises:
            ImageError: a path that cannot be read as an image (the message names it).
        """
        return self._transform(self._rgb(image))

    # --- captioning -----------------------------------------------------------------------
    def caption(
        self,
        images: Sequence[ImageInput],
        *,
        beam_size: int = 3,
        nbest: int = 1,
        length_penalty: float = 1.0,
        return_attention: bool = False,
        batch_size: int = 16,
        suppress_unk: bool = True,
    ) -> list[list[Caption]]:
        """Caption ``images``, ``batch_size`` at a time.

        Args:
            images: image paths or PIL images (any mode).
            beam_size: beams kept; 1 is greedy search.
            nbest: captions returned per image (at most ``beam_size``).
            length_penalty: captions are ranked by ``logprob / length**length_penalty``.
            return_attention: keep each caption's attention maps (models with attention).
            batch_size: images encoded and decoded together.
            suppress_unk: never generate the unknown token, so no caption says ``<unk>``
                (the next best word is taken); False lets the model's choice stand.

        Returns:
            For each image, in input order, up to ``nbest`` captions, best (highest
            ``score``) first.

        Raises:
            ValueError: a setting out of range.
            ImageError: a path that cannot be read as an image (the message names it).
        """
        for name, value in (("beam_size", beam_size), ("nbest", nbest), ("batch_size", batch_size)):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if nbest > beam_size:
            raise ValueError(
                f"nbest={nbest} exceeds beam_size={beam_size}: a beam of K keeps at most K "
                "captions; raise beam_size"
            )
        config = DecodeConfig(
            beam_size=beam_size,
            nbest=nbest,
            length_penalty=length_penalty,
            return_attention=return_attention,
            suppress_unk=suppress_unk,
        )
        results: list[list[Caption]] = []
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            pixels = torch.stack([self.preprocess(image) for image in chunk])  # (B, 3, S, S)
            results.extend(self._caption_batch(pixels, config))
        return results

    # no_grad rather than inference_mode: returned attention tensors stay ordinary tensors
    # that callers may modify in place.
    @torch.no_grad()
    def _caption_batch(self, pixels: Tensor, config: DecodeConfig) -> list[list[Caption]]:
        """Captions of ``pixels`` ``(B, 3, S, S)``."""
        enc = self.model.encoder(pixels.to(self.device))
        hyps = decode_encoded(
            self.model.decoder, enc, self.max_len, config, bos_id=BOS, eos_id=EOS, unk_id=UNK
        )
        out = []
        for nbest in hyps:
            captions = [self._to_caption(h, enc.grid) for h in nbest]
            # Search already ranks them; sorting keeps the promise whatever the search does.
            captions.sort(key=lambda c: c.score, reverse=True)
            out.append(captions)
        return out

    def _to_caption(self, hyp: Hypothesis, grid: tuple[int, int] | None) -> Caption:
        attention = None
        if hyp.attention is not None and grid is not None:
            attention = hyp.attention.detach().to("cpu", torch.float32)
        return Caption(
            text=self.tokenizer.decode(hyp.tokens),
            words=[self.tokenizer.id_to_piece(t) for t in hyp.tokens],
            logprob=float(hyp.score),
            score=float(hyp.normalized_score),
            attention=attention,
            grid=None if attention is None else tuple(grid),  # type: ignore[arg-type]
        )
