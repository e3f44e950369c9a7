"""Tests of the SWORD Bible corpus reader; all but one run without pysword or the modules.

The raw OSIS fragments below were copied from Debian's ``engWEB2015eb`` (World English Bible)
and ``spaRV1909eb`` (Reina-Valera 1909) modules, some shortened where marked.
"""

from __future__ import annotations

import importlib.util
import os
import stat
import zlib
from collections import Counter
from pathlib import Path

import pytest

from seq2seq.datasets import bible
from seq2seq.datasets.bible import align, clean_osis, prepare, split_of

WEB_GEN_1_1 = (
    '<w lemma="strong:H0430">In</w> <w lemma="strong:H0853">the</w> '
    '<w lemma="strong:H7225">beginning</w>, <w lemma="strong:H0430">God</w><note '
    'placement="foot"><reference type="annotateRef">1:1 </reference>The Hebrew word rendered '
    '“God” is “אֱלֹהִ֑ים” (Elohim).</note><w lemma="strong:H1254">created</w> '
    '<w lemma="strong:H0853">the</w> <w lemma="strong:H8064">heavens</w> '
    '<w lemma="strong:H0430">and</w> <w lemma="strong:H0853">the</w> '
    '<w lemma="strong:H0776">earth</w>. '
)
RV_GEN_1_1 = (
    '<w lemma="strong:H7225">EN el principio</w> <w lemma="strong:H1254">crió</w> '
    '<w lemma="strong:H0430">Dios</w> <w lemma="strong:H8064">los cielos</w> '
    '<w lemma="strong:H0776">y la tierra</w>. '
)
# Shortened: the glossary runs on for hundreds of entries.
WEB_REV_22_21 = (
    '<div type="x-milestone" subType="x-preverse" sID="pv16039"/><div sID="gen35836" '
    'type="x-p"/><div type="x-milestone" subType="x-preverse" eID="pv16039"/>'
    '<w lemma="strong:G3956">The</w> <w lemma="strong:G5485">grace</w> '
    '<w lemma="strong:G5485">of</w> <w lemma="strong:G3956">the</w> '
    '<w lemma="strong:G2962">Lord</w> <w lemma="strong:G2424">Jesus</w> '
    '<w lemma="strong:G2962">Christ</w> <w lemma="strong:G3956">be</w> '
    '<w lemma="strong:G3326">with</w> <w lemma="strong:G3956">all</w> '
    '<w lemma="strong:G3956">the</w> saints. Amen.  <chapter eID="Rev.22"/><div '
    'eID="gen35836" type="x-p"/> <div canonical="true" eID="gen35575" osisID="Rev" '
    'type="book"/> <div sID="gen35837" type="glossary"/> <milestone n="Glossary" '
    'type="x-usfm-h"/> <title level="1" type="main">World English Bible Glossary</title> '
    '<div sID="gen35838" type="introduction"/> <div sID="gen35839" type="x-p"/> The following '
    'words used in the World English Bible (WEB) are not very common<div eID="gen35839" '
    'type="x-p"/> <list> <item subType="x-introduction" type="x-indent-1"><seg '
    'type="keyword">Abaddon</seg> Abaddon is Hebrew for destruction.</item>'
)
# Shortened after the first line.
WEB_SONG_1_2 = (
    '<div type="x-milestone" subType="x-preverse" sID="pv8242"/><speaker>Beloved</speaker> '
    '<lg sID="gen15617"/> <l level="1" sID="gen15618"/><div type="x-milestone" '
    'subType="x-preverse" eID="pv8242"/>Let <w lemma="strong:H3588">him</w> kiss '
    '<w lemma="strong:H3588">me</w> <w lemma="strong:H6310">with</w> '
    '<w lemma="strong:H3588">the</w> <w lemma="strong:H5390">kisses</w> '
    '<w lemma="strong:H6310">of</w> <w lemma="strong:H3588">his</w> '
    '<w lemma="strong:H6310">mouth</w>;<l eID="gen15618" level="1"/>'
)
# Reina-Valera has no title markup: the superscription is the start of verse 1.
RV_PS_3_1 = (
    '<w lemma="strong:H4210">Salmo</w> <w lemma="strong:H1732">de David</w>, '
    '<w lemma="strong:H1272">cuando huía</w> <w lemma="strong:H6440">de delante</w> '
    '<w lemma="strong:H0053">de Absalom</w> <w lemma="strong:H1121">su hijo</w>. '
    '¡<w lemma="strong:H1121">OH</w> <w lemma="strong:H3068">Jehová</w>, '
    '<w lemma="strong:H4100">cuánto se</w> <w lemma="strong:H7231">han multiplicado</w> '
    '<w lemma="strong:H6862">mis enemigos</w>! <w lemma="strong:H7227">muchos</w> '
    '<w lemma="strong:H4100">se</w> <w lemma="strong:H6965">levantan</w> '
    '<w lemma="strong:H5921">contra</w> mí. '
)
# Shortened after the first line.
WEB_PS_3_1 = (
    '<div type="x-milestone" subType="x-preverse" sID="pv4877"/><title canonical="true" '
    'type="psalm">A Psalm by David, when he fled from Absalom his son.</title> <lg '
    'sID="gen7860"/> <l level="1" sID="gen7861"/><div type="x-milestone" subType="x-preverse" '
    'eID="pv4877"/>Yahweh, how <w lemma="strong:H1732">my</w> adversaries '
    '<w lemma="strong:H1121">have</w> increased!<l eID="gen7861" level="1"/>'
)
RV_GEN_2_12 = (
    '<w lemma="strong:H2091">Y el oro</w> <w lemma="strong:H1931">de aquella</w> '
    '<w lemma="strong:H0776">tierra</w> <w lemma="strong:H2896">es bueno</w>: '
    '<w lemma="strong:H8033">hay allí</w><transChange type="added">también</transChange>'
    '<w lemma="strong:H0916">bdelio</w> <w lemma="strong:H0068">y piedra</w> '
    '<w lemma="strong:H7718">cornerina</w>. '
)
# Shortened at the start.
WEB_JUDG_13_18_END = (
    '<w lemma="strong:H3068">is</w> incomprehensible<note placement="foot"><reference '
    'type="annotateRef">13:18 </reference>or, wonderful</note>?” <div eID="gen2870" '
    'type="x-p"/>'
)


def test_footnote_between_words_is_dropped_without_gluing() -> None:
    assert clean_osis(WEB_GEN_1_1) == "In the beginning, God created the heavens and the earth."


def test_footnote_before_punctuation_leaves_no_gap() -> None:
    assert clean_osis(WEB_JUDG_13_18_END) == "is incomprehensible?”"


def test_strongs_tags_keep_their_words() -> None:
    assert clean_osis(RV_GEN_1_1) == "EN el principio crió Dios los cielos y la tierra."


def test_glossary_after_closing_chapter_milestone_is_cut() -> None:
    assert clean_osis(WEB_REV_22_21) == (
        "The grace of the Lord Jesus Christ be with all the saints. Amen."
    )


def test_speaker_label_is_dropped() -> None:
    assert clean_osis(WEB_SONG_1_2) == "Let him kiss me with the kisses of his mouth;"


def test_psalm_titles_are_kept_in_both_modules() -> None:
    assert clean_osis(RV_PS_3_1).startswith("Salmo de David, cuando huía de delante de Absalom")
    assert "¡OH Jehová," in clean_osis(RV_PS_3_1)
    assert clean_osis(WEB_PS_3_1) == (
        "A Psalm by David, when he fled from Absalom his son. Yahweh, how my adversaries "
        "have increased!"
    )


def test_added_words_between_word_tags_are_separate_words() -> None:
    assert clean_osis(RV_GEN_2_12) == (
        "Y el oro de aquella tierra es bueno: hay allí también bdelio y piedra cornerina."
    )
    # An addition touching plain text is a clitic and stays attached.
    assert clean_osis('y repartiéron<transChange type="added">lo</transChange> <w>a</w>') == (
        "y repartiéronlo a"
    )


def test_editorial_headings_entities_and_whitespace() -> None:
    raw = '<title type="x-heading">Heading</title>  TR &amp;NU <lb/>read\n “Bethphage”  '
    assert clean_osis(raw) == "TR &NU read “Bethphage”"
    assert clean_osis("&lt;w&gt;") == "<w>"
    assert clean_osis("") == ""


def test_split_rule_on_known_ids() -> None:
    for verse_id in ("Gen.1.1", "John.3.16", "Rev.22.21", "Ps.23.1"):
        bucket = zlib.crc32(verse_id.encode()) % 20
        expected = {0: "test", 1: "dev"}.get(bucket, "train")
        assert split_of(verse_id) == expected


def test_split_proportions() -> None:
    ids = [f"Book{b}.{c}.{v}" for b in range(20) for c in range(1, 51) for v in range(1, 31)]
    counts = Counter(split_of(i) for i in ids)
    assert abs(counts["test"] / len(ids) - 0.05) < 0.01
    assert abs(counts["dev"] / len(ids) - 0.05) < 0.01
    assert abs(counts["train"] / len(ids) - 0.90) < 0.015


def test_align_drops_empty_missing_and_bad_ratios() -> None:
    src = {
        "Gen.1.1": "one two three four",
        "Gen.1.2": "",
        "Gen.1.3": "one",
        "Gen.1.4": "one two three four five",
        "Gen.1.5": "a b",
        "Tob.1.1": "only in source",
    }
    tgt = {
        "Gen.1.1": "uno dos tres cuatro cinco",
        "Gen.1.2": "algo",
        "Gen.1.3": "uno dos tres",
        "Gen.1.4": "uno dos",
        "Gen.1.5": "  ",
        "Gen.1.6": "solo en destino",
    }
    drops: Counter[str] = Counter()
    pairs = align(src, tgt, drops=drops)
    assert pairs == [("Gen.1.1", "one two three four", "uno dos tres cuatro cinco")]
    assert drops == Counter(empty=2, ratio_high=1, ratio_low=1, only_src=1, only_tgt=1)


def test_align_keeps_ratio_bounds_and_source_order() -> None:
    src = {"B.1.1": "a b", "A.1.1": "a b"}
    tgt = {"A.1.1": "x", "B.1.1": "w x y z"}
    assert [p[0] for p in align(src, tgt)] == ["B.1.1", "A.1.1"]


def test_prepare_with_fake_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = [f"Gen.{c}.{v}" for c in range(1, 11) for v in range(1, 31)]
    fake = {
        "SRC": {i: f"source {i}" for i in ids} | {"Gen.99.1": "extra"},
        "TGT": {i: f"destino {i}" for i in ids} | {"Gen.1.1": ""},
    }
    monkeypatch.setattr(bible, "read_module", lambda module, sword_path=None: fake[module])
    old_umask = os.umask(0o022)
    try:
        result = prepare(tmp_path / "out", src_module="SRC", tgt_module="TGT")
    finally:
        os.umask(old_umask)
    # The usual permissions from the umask, not mkstemp's private 0600 (a shared data folder).
    modes = {stat.S_IMODE(f.stat().st_mode) for f in (tmp_path / "out").iterdir()}
    assert modes == {0o644}
    assert result["drops"] == {"empty": 1, "only_src": 1, "only_tgt": 0}
    assert sum(result["pairs"].values()) == len(ids) - 1
    for split in ("train", "dev", "test"):
        lines = {
            ext: (tmp_path / "out" / f"{split}.{ext}").read_text("utf-8").splitlines()
            for ext in ("ids", "en", "es")
        }
        assert len(lines["ids"]) == result["pairs"][split]
        for verse_id, en, es in zip(lines["ids"], lines["en"], lines["es"], strict=True):
            assert split_of(verse_id) == split
            assert en == f"source {verse_id}" and es == f"destino {verse_id}"
    assert not list((tmp_path / "out").glob(".*tmp"))


def test_missing_module_error_names_module_path_and_package(tmp_path: Path) -> None:
    if importlib.util.find_spec("pysword") is None:
        with pytest.raises(bible.SwordModuleError, match="pip install pysword"):
            bible.read_module("engWEB2015eb", tmp_path)
        return
    (tmp_path / "mods.d").mkdir()
    with pytest.raises(bible.SwordModuleError) as info:
        bible.read_module("engWEB2015eb", tmp_path)
    message = str(info.value)
    assert "engWEB2015eb" in message and str(tmp_path) in message
    assert "apt-get install sword-text-web" in message


def _modules_installed() -> bool:
    if importlib.util.find_spec("pysword") is None:
        return False
    roots = bible._search_paths(None)
    return all(
        any(
            f"[{name}]" in conf.read_text("utf-8", errors="replace")
            for root in roots
            for conf in (root / "mods.d").glob("*.conf")
        )
        for name in ("engWEB2015eb", "spaRV1909eb")
    )


@pytest.mark.skipif(not _modules_installed(), reason="needs pysword and sword-text-web/-sparv")
def test_real_modules_genesis_1_1() -> None:
    en = bible.read_module("engWEB2015eb")
    es = bible.read_module("spaRV1909eb")
    assert en["Gen.1.1"] == "In the beginning, God created the heavens and the earth."
    assert es["Gen.1.1"] == "EN el principio crió Dios los cielos y la tierra."
    assert en["Rev.22.21"].endswith("Amen.")
    assert len(es) == 31102
