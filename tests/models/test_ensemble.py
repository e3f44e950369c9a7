"""Ensembles decode through the ordinary search: a model with itself is the model, two
models give the log of their mean probability at every step, vocabularies must agree."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch

from seq2seq.checkpoint import CheckpointError, checkpoint_payload, load_checkpoints
from seq2seq.cli import translate as translate_cli
from seq2seq.data.tokenizer import BOS, EOS, WordTokenizer
from seq2seq.model import EncoderDecoder, build_model
from seq2seq.models.ensemble import (
    EnsembleDecoder,
    EnsembleEncoder,
    EnsembleEncoderOutput,
    combine_log_probs,
    mean_attention,
)
from seq2seq.search.decode import DecodeConfig, decode
from seq2seq.translation.translator import Translator

WORDS = ["a", "b", "c", "d", "e", "f", "g", "h", "i"]
V = 4 + len(WORDS)  # the four special pieces, then the words
MODEL_CFG = {
    "encoder": {
        "_target_": "seq2seq.models.encoders.rnn.BiGRUEncoder",
        "embed_dim": 5,
        "hidden_dim": 4,
    },
    "decoder": {
        "_target_": "seq2seq.models.decoders.bahdanau.BahdanauDecoder",
        "embed_dim": 5,
        "hidden_dim": 6,
        "attention_dim": 3,
        "maxout_dim": 4,
    },
    "init": "pytorch",
}
CHO_CFG = {
    **MODEL_CFG,
    "decoder": {
        "_target_": "seq2seq.models.decoders.context.ContextDecoder",
        "embed_dim": 4,
        "hidden_dim": 5,
        "maxout_dim": 3,
    },
}


def model(seed: int, cfg: dict = MODEL_CFG) -> EncoderDecoder:
    torch.manual_seed(seed)
    return build_model(cfg, V, V).eval()


def ensemble(*members: EncoderDecoder) -> EncoderDecoder:
    return EncoderDecoder(
        EnsembleEncoder([m.encoder for m in members]),
        EnsembleDecoder([m.decoder for m in members]),
    ).eval()


def source() -> tuple[torch.Tensor, torch.Tensor]:
    src = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0], [11, 0, 0, 0]])
    return src, torch.tensor([4, 2, 1])


def test_combination_by_hand() -> None:
    # p1 = (0.5, 0.5), p2 = (0.9, 0.1): the mean is (0.7, 0.3).
    p1, p2 = torch.tensor([[0.5, 0.5]]), torch.tensor([[0.9, 0.1]])
    combined = combine_log_probs([p1.log() + 3.0, p2.log()])  # logits: any shift
    torch.testing.assert_close(combined, torch.tensor([[math.log(0.7), math.log(0.3)]]))
    assert mean_attention([torch.ones(2, 3), torch.zeros(2, 3)]).tolist() == [[0.5] * 3] * 2
    assert mean_attention([torch.ones(2, 3), None]) is None
    assert mean_attention([torch.ones(2, 3), torch.ones(2, 4)]) is None


@pytest.mark.parametrize("beam", [1, 3])
def test_a_model_with_itself_is_the_model(beam: int) -> None:
    single = model(0)
    pair = ensemble(single, copy.deepcopy(single))
    src, lengths = source()
    config = DecodeConfig(beam_size=beam, nbest=beam, return_attention=True)
    alone = decode(single, src, lengths, config, bos_id=BOS, eos_id=EOS)
    both = decode(pair, src, lengths, config, bos_id=BOS, eos_id=EOS)
    for hyps_alone, hyps_both in zip(alone, both, strict=True):
        assert [h.tokens for h in hyps_alone] == [h.tokens for h in hyps_both]
        for a, b in zip(hyps_alone, hyps_both, strict=True):
            assert b.score == pytest.approx(a.score, abs=1e-5)
            assert b.normalized_score == pytest.approx(a.normalized_score, abs=1e-5)
            torch.testing.assert_close(b.attention, a.attention)


def test_two_models_combine_their_steps_and_keep_their_states() -> None:
    first, second = model(0), model(1, CHO_CFG)  # an attention and a context decoder
    pair = ensemble(first, second)
    src, lengths = source()
    with torch.no_grad():
        enc = pair.encode(src, lengths)
        assert isinstance(enc, EnsembleEncoderOutput) and len(enc.members) == 2
        encs = [first.encode(src, lengths), second.encode(src, lengths)]
        state = pair.decoder.init_state(enc)
        states = [m.decoder.init_state(e) for m, e in zip((first, second), encs, strict=True)]
        prev = torch.full((3,), BOS)
        order = torch.tensor([2, 0, 0])  # as beams: reorder, repeat, drop
        for step in range(3):
            out = pair.decoder.step(prev, state, enc)
            outs = [
                m.decoder.step(prev, s, e)
                for m, s, e in zip((first, second), states, encs, strict=True)
            ]
            p = [torch.softmax(o.logits, dim=-1) for o in outs]
            torch.testing.assert_close(out.logits, ((p[0] + p[1]) / 2).log())
            assert out.attention is None  # the context decoder has none
            prev = out.logits.argmax(dim=-1)
            if step == 0:
                prev = prev[order]
                enc = enc.index_select(order)
                state = pair.decoder.reorder_state(out.state, order)
                encs = [e.index_select(order) for e in encs]
                states = [
                    m.decoder.reorder_state(o.state, order)
                    for m, o in zip((first, second), outs, strict=True)
                ]
            else:
                state = out.state
                states = [o.state for o in outs]
    # Beam search through the ensemble runs and scores with the combined distribution.
    hyps = decode(pair, src, lengths, DecodeConfig(beam_size=2), bos_id=BOS, eos_id=EOS)
    assert len(hyps) == 3 and all(len(h) == 1 for h in hyps)


def test_teacher_forced_ensemble_matches_its_steps() -> None:
    pair = ensemble(model(0), model(1))
    src, lengths = source()
    prev = torch.tensor([[BOS, 5, 6], [BOS, 7, 8], [BOS, 9, 9]])
    with torch.no_grad():
        enc = pair.encode(src, lengths)
        forced = pair.decoder(prev, enc)
        state = pair.decoder.init_state(enc)
        for t in range(prev.size(1)):
            out = pair.decoder.step(prev[:, t], state, enc)
            torch.testing.assert_close(forced.logits[:, t], out.logits)
            torch.testing.assert_close(forced.attention[:, t], out.attention)
            state = out.state


def write_checkpoint(path: Path, net: EncoderDecoder, words: list[str] = WORDS) -> Path:
    tokenizer = WordTokenizer(words)
    torch.save(
        {
            "state_dict": {f"model.{k}": v for k, v in net.state_dict().items()},
            "seq2seq": checkpoint_payload(MODEL_CFG, tokenizer, tokenizer, task="translation"),
        },
        path,
    )
    return path


def test_vocabulary_mismatch_names_both_checkpoints(tmp_path: Path) -> None:
    a = write_checkpoint(tmp_path / "a.ckpt", model(0))
    b = write_checkpoint(tmp_path / "b.ckpt", model(1), [*WORDS[:-1], "z"])
    with pytest.raises(CheckpointError, match=rf"checkpoints {a} and {b} have different source"):
        load_checkpoints([a, b])
    loaded = load_checkpoints([a, write_checkpoint(tmp_path / "c.ckpt", model(1))])
    assert len(loaded.members) == 2 and isinstance(loaded.model.decoder, EnsembleDecoder)


def test_translator_and_cli_with_several_checkpoints(tmp_path: Path, capsys) -> None:
    a = write_checkpoint(tmp_path / "a.ckpt", model(0))
    b = write_checkpoint(tmp_path / "b.ckpt", model(1))
    lines = ["a b c", "", "d e"]
    config = DecodeConfig(beam_size=2)
    single = Translator.from_checkpoint(a, decode_config=config).translate(lines)
    assert Translator.from_checkpoints([a, a], decode_config=config).translate(lines) == single
    pair = Translator.from_checkpoints([a, b], decode_config=config).translate(lines)
    source_file = tmp_path / "in.txt"
    source_file.write_text("\n".join(lines) + "\n")
    translate_cli.main([str(a), str(b), "-i", str(source_file), "--beam", "2"])
    assert capsys.readouterr().out.split("\n")[:-1] == pair


def test_caption_command_line_tells_checkpoints_from_images() -> None:
    from seq2seq.cli.caption import split_checkpoints

    ckpts, images = split_checkpoints(Path("a.pt"), ["b.ckpt", "c.ckpt", "x.png", "y.ckpt"])
    assert ckpts == [Path("a.pt"), Path("b.ckpt"), Path("c.ckpt")]
    assert images == ["x.png", "y.ckpt"]  # after the first image, everything is an image


def test_evaluate_with_several_checkpoints(tmp_path: Path, capsys) -> None:
    import json

    from seq2seq.cli import evaluate as evaluate_cli

    a = write_checkpoint(tmp_path / "a.ckpt", model(0))
    b = write_checkpoint(tmp_path / "b.ckpt", model(1))
    src, ref = tmp_path / "src.txt", tmp_path / "ref.txt"
    src.write_text("a b c\nd e\n")
    ref.write_text("a b\nd\n")
    hyp = tmp_path / "hyp.txt"
    evaluate_cli.main([str(a), str(b), "--src", str(src), "--ref", str(ref), "--hyp-out", str(hyp)])
    config = DecodeConfig(beam_size=5)
    pair = Translator.from_checkpoints([a, b], decode_config=config)
    assert hyp.read_text().split("\n")[:-1] == pair.translate(["a b c", "d e"])
    assert "bleu" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])


CAPTION_CFG = {
    "encoder": {
        "_target_": "seq2seq.models.encoders.cnn.CNNEncoder",
        "backbone": "squeezenet1_1",  # the smallest torchvision CNN
        "weights": None,
        "project_dim": 6,
    },
    "decoder": MODEL_CFG["decoder"],
    "init": "pytorch",
}


def write_captioner(path: Path, seed: int, image_size: int = 32) -> Path:
    torch.manual_seed(seed)
    net = build_model(CAPTION_CFG, 0, V)
    extra = {"image": {"image_size": image_size, "resize": "stretch"}, "max_caption_len": 6}
    entry = checkpoint_payload(CAPTION_CFG, None, WordTokenizer(WORDS), "captioning", extra)
    state = {f"model.{k}": v for k, v in net.state_dict().items()}
    torch.save({"state_dict": state, "seq2seq": entry}, path)
    return path


def test_captioning_ensemble_api_and_cli(tmp_path: Path, capsys) -> None:
    from PIL import Image

    from seq2seq.captioning.captioner import Captioner
    from seq2seq.cli import caption as caption_cli

    a, b = write_captioner(tmp_path / "a.ckpt", 0), write_captioner(tmp_path / "b.ckpt", 1)
    image = tmp_path / "red.png"
    Image.new("RGB", (40, 40), (200, 30, 30)).save(image)
    options = {"beam_size": 2, "nbest": 2, "return_attention": True, "suppress_unk": False}
    alone = Captioner.from_checkpoint(a, device="cpu").caption([image], **options)[0]
    twice = Captioner.from_checkpoints([a, a], device="cpu").caption([image], **options)[0]
    assert [c.words for c in twice] == [c.words for c in alone]
    for x, y in zip(alone, twice, strict=True):
        assert y.logprob == pytest.approx(x.logprob, abs=1e-5)
        torch.testing.assert_close(y.attention, x.attention)
        assert y.grid == x.grid
    assert caption_cli.main([str(a), str(b), str(image), "--device", "cpu"]) == 0
    assert capsys.readouterr().out.startswith(f"{image}\n")
    c = write_captioner(tmp_path / "c.ckpt", 1, image_size=48)
    with pytest.raises(CheckpointError, match=rf"checkpoints {a} and {c} differ in 'image'"):
        Captioner.from_checkpoints([a, c], device="cpu")
