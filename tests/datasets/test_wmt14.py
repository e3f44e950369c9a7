"""Tests of the WMT'14 English–French builder on a tiny fake download with the real file names.

The fake ``SOURCE_DIR`` mixes the shapes a real download takes: plain files, gzipped files, a
``.tgz`` archive (``dev.tgz``) and a ``.tar`` of gzipped files (``training-giga-fren.tar``).
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from seq2seq.datasets import wmt14
from seq2seq.datasets.wmt14 import Wmt14Error, prepare

CORPUS_LINES = {
    "training/europarl-v7.fr-en": (["Resumption of the session", "I declare"], ["Reprise", "Je"]),
    "commoncrawl.fr-en": (["crawl one", "crawl two", "crawl three"], ["un", "deux", "trois"]),
    "un/undoc.2000.fr-en": (["UN text"], ["texte ONU"]),
    "training/news-commentary-v9.fr-en": (["News , comment", ""], ["Nouvelles", ""]),
}
GIGA = (["giga one", "giga two"], ["giga un", "giga deux"])
TRAIN_EN = [
    *CORPUS_LINES["training/europarl-v7.fr-en"][0],
    *CORPUS_LINES["commoncrawl.fr-en"][0],
    *CORPUS_LINES["un/undoc.2000.fr-en"][0],
    *CORPUS_LINES["training/news-commentary-v9.fr-en"][0],
    *GIGA[0],
]
TRAIN_FR = [
    *CORPUS_LINES["training/europarl-v7.fr-en"][1],
    *CORPUS_LINES["commoncrawl.fr-en"][1],
    *CORPUS_LINES["un/undoc.2000.fr-en"][1],
    *CORPUS_LINES["training/news-commentary-v9.fr-en"][1],
    *GIGA[1],
]
DEV = {
    "newstest2012": (["dev 2012 a", "dev 2012 b"], ["dév 2012 a", "dév 2012 b"]),
    "newstest2013": (["dev 2013"], ["dév 2013"]),
}

SRC_SGM = """<srcset setid="newstest2014" srclang="any">
<doc sysid="ref" docid="1012-bbc" genre="news" origlang="en">
<p>
<seg id="1">Tom &amp; Jerry say &quot;hi&quot;.</seg>
<seg id="2">1 &lt; 2 &#39;ok&#39;</seg>
</p>
</doc>
<doc sysid="ref" docid="1018-lenta" genre="news" origlang="ru">
<seg id=1>Second   document</seg>
</doc>
</srcset>
"""
# The documents in the other order: pairs are matched on doc and seg ids, not positions.
REF_SGM = """<refset setid="newstest2014" srclang="any" trglang="fr">
<doc sysid="ref" docid="1018-lenta" genre="news" origlang="ru">
<seg id="1">Deuxième document</seg>
</doc>
<doc sysid="ref" docid="1012-bbc" genre="news" origlang="en">
<seg id="1">Tom &amp; Jerry disent &quot;salut&quot;.</seg>
<seg id="2">1 &lt; 2 &#39;d&#39;accord&#39;</seg>
</doc>
</refset>
"""
TEST_EN = ['Tom & Jerry say "hi".', "1 < 2 'ok'", "Second document"]
TEST_FR = ['Tom & Jerry disent "salut".', "1 < 2 'd'accord'", "Deuxième document"]


def _text(lines: list[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode()


def _add_to_tar(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def make_download(root: Path, train: bool = True) -> Path:
    """A fake SOURCE_DIR holding every file the builder needs (``train=False``: no corpora)."""
    root.mkdir(parents=True, exist_ok=True)
    if train:
        for stem, (en, fr) in CORPUS_LINES.items():
            (root / stem).parent.mkdir(parents=True, exist_ok=True)
            if stem.startswith("commoncrawl"):
                (root / f"{stem}.en.gz").write_bytes(gzip.compress(_text(en)))
                (root / f"{stem}.fr.gz").write_bytes(gzip.compress(_text(fr)))
            else:
                (root / f"{stem}.en").write_bytes(_text(en))
                (root / f"{stem}.fr").write_bytes(_text(fr))
        # As distributed: an uncompressed tar of two gzipped files.
        with tarfile.open(root / "training-giga-fren.tar", "w") as tar:
            for lang, lines in zip(("en", "fr"), GIGA, strict=True):
                name = f"giga-fren.release2.fixed.{lang}.gz"
                _add_to_tar(tar, name, gzip.compress(_text(lines)))
    with tarfile.open(root / "dev.tgz", "w:gz") as tar:
        for stem, (en, fr) in DEV.items():
            _add_to_tar(tar, f"dev/{stem}.en", _text(en))
            _add_to_tar(tar, f"dev/{stem}.fr", _text(fr))
        _add_to_tar(tar, "dev/newstest2012.de", _text(["unrelated"]))
    (root / "test-full").mkdir(exist_ok=True)
    (root / "test-full/newstest2014-fren-src.en.sgm").write_text(SRC_SGM, encoding="utf-8")
    (root / "test-full/newstest2014-fren-ref.fr.sgm").write_text(REF_SGM, encoding="utf-8")
    return root


def read(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")[:-1]


def test_prepare_writes_every_split_from_plain_gz_and_archived_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_download(tmp_path / "wmt14")
    out = tmp_path / "out"
    counts = prepare(src, out)
    assert counts == {"train": 10, "dev": 3, "test": 3}
    assert read(out / "train.en") == TRAIN_EN
    assert read(out / "train.fr") == TRAIN_FR
    assert read(out / "dev.en") == ["dev 2012 a", "dev 2012 b", "dev 2013"]
    assert read(out / "dev.fr") == ["dév 2012 a", "dév 2012 b", "dév 2013"]
    assert read(out / "test.en") == TEST_EN
    assert read(out / "test.fr") == TEST_FR
    # Nothing but the six outputs: the temporaries of the atomic writes are gone.
    assert sorted(p.name for p in out.iterdir()) == [
        f"{split}.{lang}" for split in ("dev", "test", "train") for lang in ("en", "fr")
    ]
    printed = capsys.readouterr().out
    assert "europarl-v7" in printed and str(src / "training/europarl-v7.fr-en.en") in printed
    assert f"{src / 'commoncrawl.fr-en.en.gz'}" in printed
    assert "training-giga-fren.tar:giga-fren.release2.fixed.en.gz" in printed
    assert "dev.tgz:dev/newstest2013.en" in printed
    lines = {line.split()[0]: int(line.split()[1]) for line in printed.splitlines()}
    assert lines["commoncrawl"] == 3 and lines["giga-fren"] == 2 and lines["newstest2014"] == 3
    assert lines["train"] == 10


def test_module_command_line_with_a_subset_of_corpora(tmp_path: Path) -> None:
    src = make_download(tmp_path / "wmt14")
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "seq2seq.datasets.wmt14", str(src), str(out)]
        + ["--corpora", "un,europarl-v7"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert read(out / "train.en") == ["UN text", "Resumption of the session", "I declare"]
    assert read(out / "train.fr") == ["texte ONU", "Reprise", "Je"]
    assert read(out / "test.fr") == TEST_FR
    assert "train" in result.stdout and "commoncrawl" not in result.stdout


def test_sides_with_different_line_counts_fail_before_writing(tmp_path: Path) -> None:
    src = make_download(tmp_path / "wmt14")
    fr = src / "un/undoc.2000.fr-en.fr"
    fr.write_bytes(_text(["texte ONU", "en trop"]))
    out = tmp_path / "out"
    with pytest.raises(Wmt14Error) as err:
        prepare(src, out)
    message = str(err.value)
    assert "\n" not in message
    assert f"{src / 'un/undoc.2000.fr-en.en'} has 1 lines but {fr} has 2" in message
    assert not out.exists()


def test_a_last_line_without_newline_still_counts(tmp_path: Path) -> None:
    src = make_download(tmp_path / "wmt14")
    (src / "un/undoc.2000.fr-en.fr").write_bytes(b"texte ONU\r\n")
    (src / "un/undoc.2000.fr-en.en").write_bytes(b"\xef\xbb\xbfUN text")
    prepare(src, tmp_path / "out", corpora=["un"], log=lambda _: None)
    assert read(tmp_path / "out/train.en") == ["UN text"]
    assert read(tmp_path / "out/train.fr") == ["texte ONU"]


def test_missing_corpus_names_the_files_and_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_download(tmp_path / "wmt14")
    (src / "un/undoc.2000.fr-en.fr").unlink()
    with pytest.raises(Wmt14Error, match=r"^un not found: looked for undoc\.2000\.fr-en\.en and "):
        prepare(src, tmp_path / "out")
    # Through the command line: exit status 1 and one line on stderr.
    assert wmt14.main([str(src), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert str(src) in err and "found only" in err and "undoc.2000.fr-en.en" in err


def test_missing_test_set_and_unknown_corpus(tmp_path: Path) -> None:
    src = make_download(tmp_path / "wmt14")
    with pytest.raises(Wmt14Error, match="unknown corpus europarl; expected some of europarl-v7"):
        prepare(src, tmp_path / "out", corpora=["europarl"])
    (src / "test-full/newstest2014-fren-ref.fr.sgm").unlink()
    with pytest.raises(
        Wmt14Error, match=r"newstest2014 not found: looked for newstest2014-fren-ref"
    ):
        prepare(src, tmp_path / "out", corpora=["un"])


def test_sgml_segments_that_do_not_align_name_the_file(tmp_path: Path) -> None:
    src = make_download(tmp_path / "wmt14")
    ref = src / "test-full/newstest2014-fren-ref.fr.sgm"
    ref.write_text(REF_SGM.replace('<seg id="2">', '<seg id="3">'), encoding="utf-8")
    with pytest.raises(Wmt14Error) as err:
        prepare(src, tmp_path / "out", corpora=["un"])
    assert str(err.value).startswith(f"{ref}: no <seg id='2'> in doc '1012-bbc'")
    assert not (tmp_path / "out").exists()


def test_sgml_bare_ampersands_stay_and_duplicate_segments_fail(tmp_path: Path) -> None:
    sgm = tmp_path / "x.sgm"
    sgm.write_text(
        '<doc docid="d">\n<seg id="1">AT&T &copy2014 &eacute;t&eacute;\n more</seg>\n</doc>\n',
        encoding="utf-8",
    )
    assert wmt14.read_sgml(wmt14.Source(sgm)) == {("d", "1"): "AT&T &copy2014 été more"}
    sgm.write_text('<doc docid="d">\n<seg id="1">a</seg>\n<seg id="1">b</seg>\n</doc>\n')
    with pytest.raises(Wmt14Error, match=rf"^{sgm}:3: second <seg id=\"1\"> in doc 'd'"):
        wmt14.read_sgml(wmt14.Source(sgm))
    sgm.write_text('<seg id="1">a</seg>\n')
    with pytest.raises(Wmt14Error, match=rf"^{sgm}:1: <seg> outside any <doc>"):
        wmt14.read_sgml(wmt14.Source(sgm))


def test_selection_replaces_the_corpora(tmp_path: Path) -> None:
    src = make_download(tmp_path / "wmt14", train=False)
    en, fr = tmp_path / "selected.en.gz", tmp_path / "selected.fr"
    en.write_bytes(gzip.compress(_text(["selected one", "selected two"])))
    fr.write_bytes(_text(["sélection un", "sélection deux"]))
    assert wmt14.main([str(src), str(tmp_path / "out"), "--selection", str(en), str(fr)]) == 0
    assert read(tmp_path / "out/train.en") == ["selected one", "selected two"]
    assert read(tmp_path / "out/train.fr") == ["sélection un", "sélection deux"]
    assert read(tmp_path / "out/dev.en") == ["dev 2012 a", "dev 2012 b", "dev 2013"]
    # Without --selection the corpora are required.
    with pytest.raises(Wmt14Error, match="europarl-v7 not found"):
        prepare(src, tmp_path / "out2")


def test_invalid_utf8_names_file_and_line(tmp_path: Path) -> None:
    src = make_download(tmp_path / "wmt14")
    bad = src / "training/europarl-v7.fr-en.fr"
    bad.write_bytes(b"Reprise\nJ\xe9\n")
    with pytest.raises(Wmt14Error, match=rf"^{bad}:2: invalid UTF-8"):
        prepare(src, tmp_path / "out", corpora=["europarl-v7"], log=lambda _: None)
    prepare(src, tmp_path / "out", corpora=["europarl-v7"], encoding_errors="replace")
    assert read(tmp_path / "out/train.fr") == ["Reprise", "J\ufffd"]


def test_a_truncated_gzip_file_is_named(tmp_path: Path) -> None:
    src = make_download(tmp_path / "wmt14")
    broken = src / "commoncrawl.fr-en.fr.gz"
    broken.write_bytes(broken.read_bytes()[:-12])
    with pytest.raises(Wmt14Error, match=rf"^{broken}: cannot read the file \("):
        prepare(src, tmp_path / "out", corpora=["commoncrawl"])


needs_sacremoses = pytest.mark.skipif(
    importlib.util.find_spec("sacremoses") is None, reason="sacremoses is not installed"
)


@needs_sacremoses
def test_moses_tokenises_every_split(tmp_path: Path) -> None:
    src = make_download(tmp_path / "wmt14")
    (src / "un/undoc.2000.fr-en.en").write_bytes(_text(["Hello, world!"]))
    (src / "un/undoc.2000.fr-en.fr").write_bytes(_text(["L'homme, c'est bien !"]))
    prepare(src, tmp_path / "out", corpora=["un"], moses=True, workers=1, log=lambda _: None)
    assert read(tmp_path / "out/train.en") == ["Hello , world !"]
    assert read(tmp_path / "out/train.fr") == ["L' homme , c' est bien !"]
    # Not escaped: "&" stays "&" rather than becoming "&amp;".
    assert read(tmp_path / "out/test.en")[0] == 'Tom & Jerry say " hi " .'


@needs_sacremoses
def test_moses_in_worker_processes_keeps_the_order() -> None:
    pairs = [(f"Line {i}, here.", f"Ligne {i}, là.") for i in range(7)]
    out = list(wmt14.tokenized(pairs, workers=2, chunk_lines=2))
    assert out == [(f"Line {i} , here .", f"Ligne {i} , là .") for i in range(7)]
