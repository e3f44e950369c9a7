"""docs/extending.md, followed literally: a decoder defined here, chosen by config from a
config folder of the user's own, trains one ``debug=fast`` epoch and decodes."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from seq2seq.cli.train import train
from seq2seq.core import Decoder, DecoderOutput, DecoderState, EncoderOutput, StepOutput
from seq2seq.translation.translator import Translator
from tests.conftest import compose_config


class ToyDecoder(Decoder):
    """A GRU that starts from the encoder summary and reads nothing else.

    Args:
        vocab_size: target vocabulary size; pad_id: padding id (both from the default
            :meth:`Decoder.from_encoder`); summary_dim: the encoder's summary size (read by
            :meth:`from_encoder` below); embed_dim, hidden_dim: sizes.
    """

    def __init__(
        self, vocab_size: int, pad_id: int, summary_dim: int, embed_dim: int, hidden_dim: int
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.init = nn.Linear(summary_dim, hidden_dim)
        self.cell = nn.GRUCell(embed_dim, hidden_dim)
        self.out = nn.Linear(hidden_dim, vocab_size)

    @classmethod
    def from_encoder(cls, encoder, vocab, **options) -> ToyDecoder:
        return cls(vocab.target, vocab.pad_id, encoder.summary_dim, **options)

    def init_state(self, enc: EncoderOutput) -> DecoderState:
        return {"h": torch.tanh(self.init(enc.summary))}

    def step(self, prev_tokens: Tensor, state: DecoderState, enc: EncoderOutput) -> StepOutput:
        h = self.cell(self.embedding(prev_tokens), state["h"])
        return StepOutput(self.out(h), {"h": h}, None)

    def forward(
        self, prev_tokens: Tensor, enc: EncoderOutput, target_mask: Tensor | None = None
    ) -> DecoderOutput:
        state, logits = self.init_state(enc), []
        for t in range(prev_tokens.size(1)):
            out = self.step(prev_tokens[:, t], state, enc)
            state = out.state
            logits.append(out.logits)
        stacked = torch.stack(logits, 1)
        return DecoderOutput(stacked if target_mask is None else stacked[target_mask], None)


def test_a_decoder_of_ones_own_trains_and_decodes(tmp_path: Path, monkeypatch) -> None:
    my_conf = tmp_path / "my_conf"
    (my_conf / "model" / "decoder").mkdir(parents=True)
    (my_conf / "model" / "decoder" / "toy.yaml").write_text(
        f"_target_: {__name__}.ToyDecoder\n"
        "embed_dim: ${model.dims.embed}\n"
        "hidden_dim: ${model.dims.decoder_hidden}\n"
    )
    monkeypatch.setenv("SEQ2SEQ_TRUSTED_MODULES", "tests.models")
    # What `seq2seq-train --config-dir my_conf model/decoder=toy` composes.
    cfg = compose_config(
        tmp_path,
        f"hydra.searchpath=[file://{my_conf}]",
        "model/decoder=toy",
        "trainer.max_epochs=1",
        "decode.test.beam_size=2",
    )
    result = train(cfg)
    assert result["test_bleu"] >= 0.0 and result["best_checkpoint"]
    translator = Translator.from_checkpoint(result["best_checkpoint"])
    assert isinstance(translator.model.decoder, ToyDecoder)
    ((best, *_),) = translator.translate_nbest(["the dog sleeps ."])
    assert best.tokens and best.logprob < 0.0
