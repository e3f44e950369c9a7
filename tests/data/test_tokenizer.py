"""Tokenizers: training, round trips, special ids, and serialisation without pickle."""

from __future__ import annotations

import io
import pickle
import random

import pytest
import torch

from seq2seq.data.tokenizer import (
    BOS,
    EOS,
    PAD,
    UNK,
    SentencePieceTokenizer,
    Tokenizer,
    WordTokenizer,
    build_tokenizers,
)

# Invented words built from a few syllables: shared subwords for the models to find.
SYLLABLES = ["ka", "lo", "mi", "nu", "pe", "ra", "si", "to", "vu", "ze", "an", "el"]
WORDS = [a + b + c for a in SYLLABLES[:6] for b in SYLLABLES[3:9] for c in ("", "n", "s")]


def make_corpus(n: int = 300, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) for _ in range(n)]


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return make_corpus()


@pytest.fixture(scope="module", params=["unigram", "bpe"])
def sp_tok(request: pytest.FixtureRequest, corpus: list[str]) -> SentencePieceTokenizer:
    return SentencePieceTokenizer.train(corpus, vocab_size=60, model_type=request.param)


def save_and_load(obj: object) -> object:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_special_ids() -> None:
    assert (PAD, UNK, BOS, EOS) == (0, 1, 2, 3)


def test_sentencepiece_roundtrip_and_special_ids(
    sp_tok: SentencePieceTokenizer, corpus: list[str]
) -> None:
    assert sp_tok.vocab_size == 60
    assert [sp_tok.id_to_piece(i) for i in (PAD, UNK, BOS, EOS)] == [
        "<pad>",
        "<unk>",
        "<s>",
        "</s>",
    ]
    for text in corpus[:50]:
        ids = sp_tok.encode(text)
        assert ids and min(ids) > EOS  # no specials in plain encodings
        assert sp_tok.decode(ids) == text


def test_sentencepiece_encode_batch_matches_encode(
    sp_tok: SentencePieceTokenizer, corpus: list[str]
) -> None:
    assert sp_tok.encode_batch(corpus[:20]) == [sp_tok.encode(t) for t in corpus[:20]]


def test_decode_stops_at_eos_and_skips_pad_bos(
    sp_tok: SentencePieceTokenizer, corpus: list[str]
) -> None:
    text, other = corpus[0], corpus[1]
    ids = sp_tok.encode(text)
    assert sp_tok.decode([BOS, *ids, EOS, *sp_tok.encode(other)]) == text
    assert sp_tok.decode(torch.tensor([BOS, *ids, EOS, PAD, PAD])) == text
    assert sp_tok.decode([PAD, *ids, PAD]) == text


def test_unknown_characters_map_to_unk(sp_tok: SentencePieceTokenizer) -> None:
    assert UNK in sp_tok.encode("kalo \u4e2d mipe")


def test_sentencepiece_state_roundtrip_survives_weights_only_load(
    sp_tok: SentencePieceTokenizer, corpus: list[str]
) -> None:
    state = save_and_load(sp_tok.to_state())
    assert state["type"] == "sentencepiece"
    restored = Tokenizer.from_state(state)
    assert isinstance(restored, SentencePieceTokenizer)
    assert restored.encode_batch(corpus) == sp_tok.encode_batch(corpus)
    assert restored.vocab_size == sp_tok.vocab_size


def test_sentencepiece_training_is_deterministic(corpus: list[str]) -> None:
    a = SentencePieceTokenizer.train(corpus, vocab_size=50, seed=3)
    b = SentencePieceTokenizer.train(iter(corpus), vocab_size=50, seed=3)
    assert a.to_state() == b.to_state()


def test_sentencepiece_vocab_too_large_is_explained(corpus: list[str]) -> None:
    with pytest.raises(ValueError, match=r"vocab_size=5000 is too large .* at most \d+"):
        SentencePieceTokenizer.train(corpus, vocab_size=5000)


def test_sentencepiece_vocab_too_small_is_explained(corpus: list[str]) -> None:
    with pytest.raises(ValueError, match=r"vocab_size=6 is too small .* at least \d+"):
        SentencePieceTokenizer.train(corpus, vocab_size=6)


def test_sentencepiece_empty_training_text() -> None:
    with pytest.raises(ValueError, match="empty"):
        SentencePieceTokenizer.train([], vocab_size=20)


def test_sentencepiece_bad_model_type(corpus: list[str]) -> None:
    with pytest.raises(ValueError, match="model_type"):
        SentencePieceTokenizer.train(corpus, vocab_size=50, model_type="word")  # type: ignore[arg-type]


def test_word_tokenizer_vocab_order_and_unknowns() -> None:
    tok = WordTokenizer.build(["b a c a", "b a d", "<s> e"])
    # a (3) > b (2) > c, d, e, <s>... ties alphabetical; "<s>" is text, not a special piece.
    assert [tok.id_to_piece(i) for i in range(tok.vocab_size)] == [
        "<pad>", "<unk>", "<s>", "</s>", "a", "b", "c", "d", "e",
    ]  # fmt: skip
    assert tok.encode("a zebra b <s>") == [4, UNK, 5, UNK]
    assert tok.decode([BOS, 4, UNK, 5, EOS, 6]) == "a <unk> b"


def test_word_tokenizer_is_deterministic_and_capped() -> None:
    texts = make_corpus(200)
    a = WordTokenizer.build(texts, max_size=10)
    b = WordTokenizer.build(list(reversed(texts)), max_size=10)
    assert a.vocab_size == 10
    assert a.to_state() == b.to_state()
    rare = WordTokenizer.build(["x x y"], min_freq=2)
    assert rare.encode("x y") == [4, UNK]


def test_word_tokenizer_state_roundtrip() -> None:
    texts = make_corpus(50)
    tok = WordTokenizer.build(texts)
    restored = Tokenizer.from_state(save_and_load(tok.to_state()))
    assert isinstance(restored, WordTokenizer)
    assert restored.encode_batch(texts) == tok.encode_batch(texts)
    assert restored.decode(tok.encode(texts[0])) == texts[0]


def test_pickle_goes_through_state(sp_tok: SentencePieceTokenizer) -> None:
    restored = pickle.loads(pickle.dumps(sp_tok))
    assert restored.encode("kalo mipe") == sp_tok.encode("kalo mipe")


def test_from_state_unknown_type() -> None:
    with pytest.raises(ValueError, match="known types"):
        Tokenizer.from_state({"type": "nope"})


def test_build_tokenizers_joint_and_separate(corpus: list[str]) -> None:
    tgt = [t.upper() for t in corpus]
    src_tok, tgt_tok = build_tokenizers("sentencepiece", corpus, tgt, vocab_size=60, joint=True)
    assert src_tok is tgt_tok
    assert src_tok.decode(src_tok.encode(tgt[0])) == tgt[0]
    src_tok, tgt_tok = build_tokenizers(
        "word", corpus, tgt, vocab_size=200, joint=False, model_type="bpe"
    )
    assert src_tok is not tgt_tok
    assert UNK not in src_tok.encode(corpus[0]) and UNK in src_tok.encode(tgt[0])
    assert tgt_tok.encode(tgt[0]) and UNK not in tgt_tok.encode(tgt[0])


def test_build_tokenizers_unknown_kind(corpus: list[str]) -> None:
    with pytest.raises(ValueError, match="sentencepiece.*word"):
        build_tokenizers("bytes", corpus, corpus, vocab_size=50, joint=True)
