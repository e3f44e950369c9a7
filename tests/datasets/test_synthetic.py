"""Tests for the synthetic translation task (seq2seq.datasets.synthetic and its grammar)."""

from __future__ import annotations

import json
import random
import statistics
from pathlib import Path

import pytest

import seq2seq.datasets.synthetic_grammar as g
from seq2seq.datasets.synthetic import (
    FORMAT_VERSION,
    STAMP_NAME,
    SyntheticConfig,
    generate_pairs,
    main,
    write_synthetic_corpus,
)
from seq2seq.datasets.synthetic_grammar import (
    NOUN_GENDERS,
    NOUNS,
    TARGET_STEMS,
    Sampler,
    TooLong,
    parse,
    render_source,
    render_target,
    translate,
)

#: Exact translations: any change to the target language (lexicon, seed, morphology, word
#: order) breaks these on purpose. Update them only together with FORMAT_VERSION.
GOLDEN = [
    ("the cat runs .", "vozit sileme tupapat ."),
    ("a dog quickly swam .", "vanin visabo gepid degedit ."),
    ("the big red cat sees the dog .", "vozit natobe lonepe sileme vaninak silemo nugulat ."),
    ("some mice under a tree slept .", "zimuten sagabes zizobum visabe bosa vatavint ."),
    (
        "many farmers heard the king and the queen sang .",
        "novaken kibeles mumerak silemo samevint vepi poras silemo velebit .",
    ),
    (
        "every old man feeds some hungry goats in the garden .",
        "sadag bulile nivite nudisenak gakimes sagabes mimegum sileme noba gepegat .",
    ),
    (
        "the children that the woman knew sang but the boy laughed .",
        "vulaten silemes sade bunal sileme zopipit velebint vana voleg silemo vizupit .",
    ),
    (
        "a wolf that often chases the rabbits met no fox .",
        "pupos visabo simo nomezenak silemos zozig videbat niligak vimake rasupit .",
    ),
]
BUCKETS = [(0, 10), (10, 20), (20, 30), (30, 40), (40, 50), (50, 60), (60, 10**9)]


@pytest.fixture(scope="module")
def many_pairs() -> list[tuple[str, str]]:
    return generate_pairs(20000, seed=1234)


def small_config(**overrides: int) -> SyntheticConfig:
    values = {"seed": 5, "n_train": 1500, "n_dev": 100, "n_test": 200, "max_len": 80}
    values.update(overrides)
    return SyntheticConfig(**values)


def read_lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    return text.splitlines()


# --- generation -----------------------------------------------------------------------------
def test_same_seed_same_pairs_different_seed_different_pairs() -> None:
    a = generate_pairs(300, seed=7)
    assert a == generate_pairs(300, seed=7)
    assert len(a) == 300
    b = generate_pairs(300, seed=8)
    assert sum(x != y for x, y in zip(a, b, strict=True)) > 250
    assert generate_pairs(600, seed=7)[:300] == a  # a longer run extends a shorter one


def test_length_distribution() -> None:
    lengths = [len(src.split()) for src, _ in generate_pairs(2000, seed=1234)]
    assert 15 <= statistics.median(lengths) <= 25
    for lo, hi in BUCKETS:
        count = sum(lo <= n < hi for n in lengths)
        assert count >= 50, f"only {count} sentences of length [{lo}, {hi})"
    assert min(lengths) >= 4
    assert max(lengths) <= 80


def test_max_len_is_respected() -> None:
    pairs = generate_pairs(300, seed=3, max_len=15)
    assert len(pairs) == 300
    assert all(len(src.split()) <= 15 for src, _ in pairs)
    with pytest.raises(ValueError):
        generate_pairs(1, seed=3, max_len=3)


def test_sentences_are_well_formed(many_pairs: list[tuple[str, str]]) -> None:
    for src, tgt in many_pairs[:2000]:
        assert src.endswith(" .") and tgt.endswith(" .")
        assert src == src.strip().lower() and "  " not in src and "  " not in tgt
        assert src.count(".") == 1 and tgt.count(".") == 1


def test_source_determines_target(many_pairs: list[tuple[str, str]]) -> None:
    reference: dict[str, str] = {}
    for src, tgt in many_pairs:
        assert reference.setdefault(src, tgt) == tgt, f"{src!r} has two translations"
    assert len(reference) > 19000  # and duplicates are rare
    # Stronger: the deterministic parser finds the generator's own translation every time.
    for src, tgt in many_pairs[:5000]:
        assert translate(src) == tgt


def test_parser_recovers_every_sampled_tree() -> None:
    # The deterministic parser gives back the very tree that produced each string, so the
    # generator's target (rendered from that tree) is a function of the source string alone.
    sampler = Sampler(random.Random(0))
    checked = 0
    for i in range(3000):
        max_len = 40 if i % 2 else 200
        try:
            tree = sampler.sentence(complexity=(i % 14) / 10, max_len=max_len)
        except TooLong:
            continue
        source = render_source(tree)
        assert len(source) <= max_len
        parsed = parse(" ".join(source))
        assert parsed == tree
        assert render_target(parsed) == render_target(tree)
        checked += 1
    assert checked > 2000


def test_parser_rejects_ungrammatical_input() -> None:
    for bad in ["cat the runs .", "the cat runs", "the cat sees .", "the cat runs . the"]:
        with pytest.raises(ValueError):
            parse(bad)


def test_vocabulary_sizes(many_pairs: list[tuple[str, str]]) -> None:
    src_vocab = {w for src, _ in many_pairs for w in src.split()}
    tgt_vocab = {w for _, tgt in many_pairs for w in tgt.split()}
    assert 150 <= len(src_vocab) <= 200
    assert 300 <= len(tgt_vocab) <= 500
    assert not src_vocab & tgt_vocab - {"."}
    assert len(set(TARGET_STEMS.values())) == len(TARGET_STEMS)  # one stem per lemma


def test_every_source_word_has_one_category() -> None:
    # The parser decides from the next token alone, so no word may serve two categories.
    verbs = [*g.TRANS_VERBS.items(), *g.INTRANS_VERBS.items()]
    forms = [
        *g.DETERMINERS,
        *g.ADJECTIVES,
        *g.NOUNS,
        *g.NOUNS.values(),
        *(form for lemma, other in verbs for form in (lemma, *other)),
        *g.ADVERBS,
        *g.NP_PREPS,
        *g.VP_PREPS,
        *g.CONJUNCTIONS,
        "that",
        ".",
    ]
    assert len(forms) == len(set(forms)) <= 200


# --- the target language --------------------------------------------------------------------
@pytest.mark.parametrize(("src", "tgt"), GOLDEN)
def test_golden_translations(src: str, tgt: str) -> None:
    assert translate(src) == tgt


def test_word_order_is_reordered() -> None:
    stem = TARGET_STEMS
    out = translate("the big red cat sees the dog .").split()
    # Noun first, adjectives after it (mirrored), determiner last; verb clause-final.
    assert [w[:5] for w in out[:4]] == [stem["cat"], stem["red"], stem["big"], stem["the"]]
    assert out[4].startswith(stem["dog"]) and out[-2].startswith(stem["see"]) and out[-1] == "."
    # A postposition follows its noun phrase.
    out = translate("the cat under a tree sleeps .").split()
    assert out.index(stem["under"]) == out.index(next(w for w in out if w[:5] == stem["tree"])) + 2
    # A clause-level PP and an adverb come before the verb at the end.
    out = translate("the cat suddenly sees the dog in the garden .").split()
    assert out[-3:] == [stem["suddenly"], out[-2], "."] and out[-2].startswith(stem["see"])
    assert out.index(stem["in"]) == len(out) - 4


def test_verb_agrees_with_distant_subject() -> None:
    def verb(src: str) -> str:
        return translate(src).split()[-2]

    singular, plural = verb("the cat saw the dog ."), verb("the cats saw the dog .")
    assert singular != plural  # English "saw" shows no number; the target verb does
    assert singular.startswith(TARGET_STEMS["see"]) and plural.startswith(TARGET_STEMS["see"])
    # Agreement is with the head noun, not with the closer noun inside the PP.
    assert verb("the cat near the big old dogs saw the bird .") == singular
    assert verb("the cats near the big old dog saw the bird .") == plural
    # Tense is marked too.
    assert verb("the cat sees the dog .") not in (singular, plural)


def test_nouns_adjectives_and_determiners_inflect() -> None:
    class_i, class_ii = (next(n for n, g in NOUN_GENDERS.items() if g == k) for k in (0, 1))
    adj_i = translate(f"the old {class_i} runs .").split()[1]
    adj_ii = translate(f"the old {class_ii} runs .").split()[1]
    assert adj_i != adj_ii  # gender agreement
    assert adj_i[:5] == adj_ii[:5] == TARGET_STEMS["old"]
    sg = translate(f"the old {class_i} saw the cat .").split()
    pl = translate(f"the old {NOUNS[class_i]} saw the cat .").split()
    assert all(a != b for a, b in zip(sg[:3], pl[:3], strict=True))  # number on N, Adj, Det
    as_object = translate(f"the cat saw the {class_i} .").split()[2]
    assert as_object != sg[0] and as_object.startswith(TARGET_STEMS[class_i])  # accusative


def test_target_language_does_not_depend_on_data_seed() -> None:
    for seed in (1, 2):
        for src, tgt in generate_pairs(200, seed=seed):
            assert translate(src) == tgt


# --- writing the corpus ---------------------------------------------------------------------
def test_write_corpus_splits_are_aligned_and_disjoint(tmp_path: Path) -> None:
    config = small_config()
    paths = write_synthetic_corpus(tmp_path, config, src_lang="en", tgt_lang="xx")
    assert set(paths) == {"train", "dev", "test"}
    sources: dict[str, set[str]] = {}
    for split, (src_path, tgt_path) in paths.items():
        assert src_path == tmp_path / f"{split}.en" and tgt_path == tmp_path / f"{split}.xx"
        src, tgt = read_lines(src_path), read_lines(tgt_path)
        assert len(src) == len(tgt) == getattr(config, f"n_{split}")
        assert len(set(src)) == len(src)  # deduplicated
        assert all(translate(s) == t for s, t in zip(src, tgt, strict=True))  # aligned
        sources[split] = set(src)
    assert not sources["train"] & sources["dev"]
    assert not sources["train"] & sources["test"]
    assert not sources["dev"] & sources["test"]
    stamp = json.loads((tmp_path / STAMP_NAME).read_text(encoding="utf-8"))
    assert stamp["format_version"] == FORMAT_VERSION and stamp["seed"] == config.seed
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_write_corpus_is_idempotent(tmp_path: Path) -> None:
    config = small_config()
    paths = write_synthetic_corpus(tmp_path, config)
    files = [p for pair in paths.values() for p in pair]

    def identity() -> list[tuple[int, int]]:
        # Atomic writes replace the inode, so an unchanged inode and mtime mean "not rewritten".
        return [(p.stat().st_ino, p.stat().st_mtime_ns) for p in files]

    before = identity()
    assert write_synthetic_corpus(tmp_path, config) == paths
    assert identity() == before

    test_before = read_lines(paths["test"][0])
    write_synthetic_corpus(tmp_path, small_config(n_train=1000))  # different stamp: rewrite
    assert identity() != before
    assert len(read_lines(paths["train"][0])) == 1000
    assert read_lines(paths["test"][0]) == test_before  # test split does not move with n_train

    (tmp_path / STAMP_NAME).unlink()  # as after an interrupted run
    before = identity()
    write_synthetic_corpus(tmp_path, small_config(n_train=1000))
    assert identity() != before
    assert (tmp_path / STAMP_NAME).is_file()


def test_different_seed_gives_different_corpus(tmp_path: Path) -> None:
    a = write_synthetic_corpus(tmp_path / "a", small_config(seed=1))
    b = write_synthetic_corpus(tmp_path / "b", small_config(seed=2))
    assert read_lines(a["train"][0]) != read_lines(b["train"][0])


def test_main_writes_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [str(tmp_path), "--seed", "3", "--n-train", "300", "--n-dev", "40", "--n-test", "50"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "train" in out and "median" in out and str(tmp_path / "test.src") in out
    assert len(read_lines(tmp_path / "dev.tgt")) == 40
