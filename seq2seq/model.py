"""An encoder and a decoder joined, built from the Hydra model config.

The config names the encoder and decoder classes by ``_target_``; the decoder is sized from
the built encoder (``output_dim``, ``summary_dim``), so no size is written twice.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, TypeVar

from hydra.utils import get_class
from omegaconf import OmegaConf
from torch import Tensor, nn

from seq2seq.core import Decoder, DecoderOutput, Encoder, EncoderOutput, Vocabularies
from seq2seq.errors import ConfigError
from seq2seq.models.modules.init import initialise

T = TypeVar("T")

#: Only classes of this package, or of the modules named in ``SEQ2SEQ_TRUSTED_MODULES``
#: (comma-separated prefixes, for a user's own encoders and decoders), may be named by a model
#: config: a config read back from a checkpoint must not make the builder import arbitrary code.
ALLOWED_TARGET_PREFIX = "seq2seq."
TRUSTED_ENV = "SEQ2SEQ_TRUSTED_MODULES"


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


def trusted_prefixes() -> tuple[str, ...]:
    """The module prefixes a model config may name (see :data:`TRUSTED_ENV`)."""
    extra = [p.strip() for p in os.environ.get(TRUSTED_ENV, "").split(",") if p.strip()]
    return (ALLOWED_TARGET_PREFIX, *(p if p.endswith(".") else p + "." for p in extra))


def _check_targets(node: Any, where: str, allowed: tuple[str, ...]) -> None:
    """Refuse ``_target_`` s outside the ``allowed`` prefixes."""
    if isinstance(node, Mapping):
        target = node.get("_target_")
        if target is not None and not str(target).startswith(allowed):
            raise ValueError(
                f"{where}._target_ is {target!r}; only classes of the seq2seq package "
                f"({ALLOWED_TARGET_PREFIX}...) or of modules named in {TRUSTED_ENV} may be "
                "built from a model config"
            )
        for key, value in node.items():
            _check_targets(value, f"{where}.{key}", allowed)


def _part(cfg: Any, where: str, base: type[T]) -> tuple[type[T], dict[str, Any]]:
    """The class a ``model.<where>`` config names (a subclass of ``base``) and its options."""
    options = dict(OmegaConf.to_container(cfg, resolve=True))
    target = options.pop("_target_", None)
    options.pop("_partial_", None)  # configs written before the from_config contract
    if not target:
        raise ConfigError(f"model.{where}._target_ is missing: name the {base.__name__} class")
    try:
        cls = get_class(str(target))
    except Exception as err:  # Hydra wraps import errors of every kind
        raise ConfigError(f"model.{where}._target_={target!r} cannot be imported ({err})") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(
            f"model.{where}._target_={target!r} is not a {base.__name__} "
            f"(a subclass of seq2seq.core.{base.__name__})"
        )
    return cls, options


def build_model(
    model_cfg: Mapping[str, Any], src_vocab_size: int, tgt_vocab_size: int, pad_id: int = 0
) -> EncoderDecoder:
    """Build the model described by ``model_cfg`` (keys ``encoder``, ``decoder``, ``init``).

    ``encoder`` and ``decoder`` name their class by ``_target_``; everything else in them is
    the class's options. The encoder is built by ``from_config`` and the decoder by
    ``from_encoder`` (:mod:`seq2seq.core`): each reads what it needs of the vocabularies and
    of the built encoder, so no size is written twice and no class takes what it ignores.
    """
    cfg = OmegaConf.create(dict(model_cfg)) if not OmegaConf.is_config(model_cfg) else model_cfg
    _check_targets(OmegaConf.to_container(cfg, resolve=True), "model", trusted_prefixes())
    for part in ("encoder", "decoder"):
        if part not in cfg:
            raise ValueError(f"model config has no '{part}' entry (keys: {sorted(cfg)})")
    vocab = Vocabularies(source=src_vocab_size, target=tgt_vocab_size, pad_id=pad_id)
    encoder_cls, encoder_options = _part(cfg.encoder, "encoder", Encoder)
    encoder = encoder_cls.from_config(vocab, **encoder_options)
    decoder_cls, decoder_options = _part(cfg.decoder, "decoder", Decoder)
    decoder = decoder_cls.from_encoder(encoder, vocab, **decoder_options)
    model = EncoderDecoder(encoder, decoder)
    return initialise(model, cfg.get("init", "bahdanau"))
