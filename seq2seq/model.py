"""An encoder and a decoder joined, built from the Hydra model config.

The config names the encoder and decoder as partial ``_target_`` s; the decoder is sized
from the built encoder (``output_dim``, ``summary_dim``), so no size is written twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import Tensor, nn

from seq2seq.core import Decoder, DecoderOutput, Encoder, EncoderOutput
from seq2seq.models.modules.init import initialise

#: Only classes of this package may be named by a config, so that a config read back from a
#: checkpoint cannot make ``instantiate`` call arbitrary code.
ALLOWED_TARGET_PREFIX = "seq2seq."


class EncoderDecoder(nn.Module):
    """Any encoder with any decoder."""

    def __init__(self, encoder: Encoder, decoder: Decoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def encode(self, src: Tensor, src_lengths: Tensor | None = None) -> EncoderOutput:
        """``src`` ``(B, N)`` (or images) to the encoder output."""
        return self.encoder(src, src_lengths)

    def forward(
        self, src: Tensor, src_lengths: Tensor | None, prev_tokens: Tensor
    ) -> DecoderOutput:
        """Teacher-forced logits ``(B, T, V)`` for ``prev_tokens`` ``(B, T)`` (BOS + target)."""
        return self.decoder(prev_tokens, self.encode(src, src_lengths))


def _check_targets(node: Any, where: str) -> None:
    """Refuse ``_target_`` s outside this package (see :data:`ALLOWED_TARGET_PREFIX`)."""
    if isinstance(node, Mapping):
        target = node.get("_target_")
        if target is not None and not str(target).startswith(ALLOWED_TARGET_PREFIX):
            raise ValueError(
                f"{where}._target_ is {target!r}; only classes of the seq2seq package "
                f"({ALLOWED_TARGET_PREFIX}...) may be built from a model config"
            )
        for key, value in node.items():
            _check_targets(value, f"{where}.{key}")


def build_model(
    model_cfg: Mapping[str, Any], src_vocab_size: int, tgt_vocab_size: int, pad_id: int = 0
) -> EncoderDecoder:
    """Build the model described by ``model_cfg`` (keys ``encoder``, ``decoder``, ``init``).

    ``encoder`` and ``decoder`` are ``_partial_`` configs; vocabulary sizes and the
    encoder's dimensions are filled in here.
    """
    cfg = OmegaConf.create(dict(model_cfg)) if not OmegaConf.is_config(model_cfg) else model_cfg
    _check_targets(OmegaConf.to_container(cfg, resolve=True), "model")
    for part in ("encoder", "decoder"):
        if part not in cfg:
            raise ValueError(f"model config has no '{part}' entry (keys: {sorted(cfg)})")
    encoder = instantiate(cfg.encoder)(vocab_size=src_vocab_size, pad_id=pad_id)
    decoder = instantiate(cfg.decoder)(
        vocab_size=tgt_vocab_size,
        annotation_dim=encoder.output_dim,
        summary_dim=encoder.summary_dim,
        pad_id=pad_id,
    )
    model = EncoderDecoder(encoder, decoder)
    return initialise(model, cfg.get("init", "bahdanau"))
