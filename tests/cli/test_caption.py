"""Train tiny captioners (Show-Attend-Tell and NIC) once, then use them through the Python
API (:class:`seq2seq.captioning.captioner.Captioner`) and the ``seq2seq-caption`` command line."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from seq2seq.captioning.captioner import Captioner
from seq2seq.captioning.images import ImageError
from seq2seq.cli import caption as caption_cli
from seq2seq.cli.train import train
from seq2seq.data.tokenizer import UNK
from tests.conftest import compose_config

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _train(base: Path, experiment: str) -> dict:
    result = train(compose_config(base, f"experiment={experiment}"))
    images = sorted((base / "data" / "scenes-debug" / "images").glob("test_*.png"))
    assert images, "the debug scenes should include test images"
    return {"ckpt": str(result["best_checkpoint"]), "images": [str(p) for p in images]}


@pytest.fixture(scope="module")
def sat(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return _train(tmp_path_factory.mktemp("sat"), "shapes_sat")


@pytest.fixture(scope="module")
def nic(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return _train(tmp_path_factory.mktemp("nic"), "shapes_nic")


@pytest.fixture(scope="module")
def captioner(sat: dict) -> Captioner:
    return Captioner.from_checkpoint(sat["ckpt"], device="cpu")


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = caption_cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- Python API -----------------------------------------------------------------------------
def test_api_nbest_is_sorted_by_score_with_logprobs_at_most_zero(
    sat: dict, captioner: Captioner
) -> None:
    results = captioner.caption(sat["images"][:3], beam_size=4, nbest=3)
    assert len(results) == 3
    for captions in results:
        assert 1 <= len(captions) <= 3
        scores = [c.score for c in captions]
        assert scores == sorted(scores, reverse=True)
        assert all(c.logprob <= 0 for c in captions)
        assert all(c.text == " ".join(c.words) for c in captions)  # word tokenizer
        assert all(c.attention is None for c in captions)  # not requested


def test_api_preprocess_and_input_image_match_the_checkpoint(
    sat: dict, captioner: Captioner
) -> None:
    assert captioner.preprocess(sat["images"][0]).shape == (3, 48, 48)
    picture = captioner.input_image(sat["images"][0])
    assert picture.size == (48, 48) and picture.mode == "RGB"
    with pytest.raises(ValueError, match="nbest=4 exceeds beam_size=2"):
        captioner.caption(sat["images"][:1], beam_size=2, nbest=4)


def test_api_greedy_and_beam_agree(
    sat: dict, captioner: Captioner, capsys: pytest.CaptureFixture[str]
) -> None:
    images = sat["images"]
    greedy = [c[0] for c in captioner.caption(images, beam_size=1)]
    # Ranked by the raw log-probability (length_penalty 0), a wider beam can only find
    # captions at least as probable as the greedy ones on these tiny scenes.
    beam = [c[0] for c in captioner.caption(images, beam_size=5, length_penalty=0.0)]
    for g, b in zip(greedy, beam, strict=True):
        assert b.logprob >= g.logprob - 1e-4
    # The command line's --beam 1 is the same greedy search.
    code, out, err = _run([sat["ckpt"], *images, "--beam", "1", "--device", "cpu"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1::3] == [f"  {g.text}" for g in greedy]
    assert [float(x.split(":")[1]) for x in lines[2::3]] == pytest.approx(
        [g.logprob for g in greedy], abs=0.006
    )


def test_api_attention_rows_cover_the_grid(sat: dict, nic: dict, captioner: Captioner) -> None:
    best = captioner.caption(sat["images"][:2], return_attention=True)
    for (caption,) in best:
        assert caption.attention is not None and caption.grid is not None
        height, width = caption.grid
        assert caption.attention.shape[1] == height * width
        assert caption.attention.shape[0] in (len(caption.words), len(caption.words) + 1)
        sums = caption.attention.sum(dim=1)
        assert torch.allclose(sums, torch.ones_like(sums), atol=1e-4)
    nic_captioner = Captioner.from_checkpoint(nic["ckpt"], device="cpu")
    (caption,) = nic_captioner.caption(nic["images"][:1], return_attention=True)[0]
    assert caption.attention is None and caption.grid is None


# --- command line ---------------------------------------------------------------------------
def test_cli_prints_path_caption_and_logprob(
    sat: dict, captioner: Captioner, capsys: pytest.CaptureFixture[str]
) -> None:
    images = sat["images"][:2]
    code, out, err = _run([sat["ckpt"], *images, "--beam", "3", "--device", "cpu"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 3 * len(images)
    expected = captioner.caption(images, beam_size=3)
    for i, (path, captions) in enumerate(zip(images, expected, strict=True)):
        head, text, logprob = lines[3 * i : 3 * i + 3]
        assert head == path
        assert text == f"  {captions[0].text}"
        assert logprob.startswith("  logprob: ")
        value = float(logprob.split(":", 1)[1])
        assert value <= 0 and value == pytest.approx(captions[0].logprob, abs=0.006)


def test_cli_nbest_numbers_the_captions(sat: dict, capsys: pytest.CaptureFixture[str]) -> None:
    image = sat["images"][0]
    code, out, err = _run([sat["ckpt"], image, "--beam", "3", "--nbest", "3"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == image
    ranked, logprobs = lines[1::2], lines[2::2]
    assert 1 <= len(ranked) <= 3 and len(ranked) == len(logprobs)
    for rank, (line, logprob) in enumerate(zip(ranked, logprobs, strict=True), start=1):
        assert line.startswith(f"  {rank}. ")
        assert float(logprob.split("logprob:", 1)[1]) <= 0


def test_cli_nbest_larger_than_beam_is_refused(
    sat: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run([sat["ckpt"], sat["images"][0], "--beam", "2", "--nbest", "3"], capsys)
    assert code == 2 and err.startswith("error: --nbest 3 needs --beam 3")


def test_cli_attention_dir_writes_one_png_per_image(
    sat: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two images with the same stem in different folders must not overwrite each other.
    other = tmp_path / "copies" / Path(sat["images"][0]).name
    other.parent.mkdir()
    other.write_bytes(Path(sat["images"][0]).read_bytes())
    images = [sat["images"][0], str(other), sat["images"][1]]
    out_dir = tmp_path / "attention"
    code, _, err = _run([sat["ckpt"], *images, "--attention-dir", str(out_dir)], capsys)
    assert code == 0, err
    stem0, stem1 = Path(images[0]).stem, Path(images[2]).stem
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == sorted([f"{stem0}.png", f"{stem0}-2.png", f"{stem1}.png"])
    for name in names:
        data = (out_dir / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 1000


def test_cli_attention_dir_with_nic_gives_one_notice(
    nic: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "attention"
    code, out, err = _run(
        [nic["ckpt"], *nic["images"][:3], "--attention-dir", str(out_dir)], capsys
    )
    assert code == 0
    assert err.count("\n") == 1 and "has no attention" in err
    assert out.count("logprob:") == 3
    assert not any(out_dir.iterdir())


def test_cli_bad_images_are_reported_and_skipped(
    sat: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.png"
    text = tmp_path / "notes.png"
    text.write_text("not an image\n")
    good = sat["images"][0]
    # batch-size 2: a batch with a bad image still captions its good one.
    argv = [sat["ckpt"], str(missing), good, str(text), "--batch-size", "2"]
    code, out, err = _run(argv, capsys)
    assert code == 1
    errors = err.splitlines()
    assert len(errors) == 2 and all(line.startswith("error: ") for line in errors)
    assert errors[0] == f"error: {missing}: image file not found"
    assert errors[1].startswith(f"error: {text}: ")
    assert out.splitlines()[0] == good and out.count("logprob:") == 1


@pytest.mark.parametrize("kind", ["missing", "garbage", "random", "truncated", "translation"])
def test_cli_unusable_checkpoint_exits_2_with_one_line(
    kind: str, sat: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = tmp_path / "model.ckpt"
    if kind == "garbage":
        ckpt.write_text("this is not a checkpoint\n" * 100)
    elif kind == "random":
        ckpt.write_bytes(random.Random(0).randbytes(4096))
    elif kind == "truncated":
        ckpt.write_bytes(Path(sat["ckpt"]).read_bytes()[:5000])
    elif kind == "translation":
        raw = torch.load(sat["ckpt"], map_location="cpu", weights_only=True)
        raw["seq2seq"]["task"] = "translation"
        torch.save(raw, ckpt)
    expected = {
        "missing": "no such file",
        "garbage": "truncated or not a PyTorch checkpoint",
        "random": "was refused",
        "truncated": "truncated or not a PyTorch checkpoint",
        "translation": "is a 'translation' model; expected a 'captioning' model",
    }[kind]
    code, out, err = _run([str(ckpt), sat["images"][0]], capsys)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1
    assert expected in err and str(ckpt) in err


def test_grayscale_and_rgba_images_are_captioned(
    sat: dict, captioner: Captioner, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = Image.open(sat["images"][0])
    gray = tmp_path / "gray.png"
    source.convert("L").save(gray)
    rgba = tmp_path / "rgba.png"
    translucent = source.convert("RGBA")
    translucent.putalpha(128)
    translucent.save(rgba)
    code, out, err = _run([sat["ckpt"], str(gray), str(rgba)], capsys)
    assert code == 0, err
    assert out.count("logprob:") == 2
    # A PIL image in memory is prepared like the same image read from a file.
    from_memory = captioner.caption([translucent])[0][0]
    from_file = captioner.caption([rgba])[0][0]
    assert from_memory.text == from_file.text
    assert from_memory.logprob == pytest.approx(from_file.logprob)


def test_console_script_runs_as_a_user_runs_it(sat: dict, tmp_path: Path) -> None:
    """The installed entry point in a real process: captions, an error line, exit status 1
    and no traceback."""
    exe = Path(sys.executable).with_name("seq2seq-caption")
    missing = tmp_path / "missing.png"
    proc = subprocess.run(
        [str(exe), sat["ckpt"], sat["images"][0], str(missing), "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[0] == sat["images"][0]
    assert "logprob:" in proc.stdout
    assert f"error: {missing}: image file not found" in proc.stderr
    assert "Traceback" not in proc.stderr


# --- <unk> and the pixel limit --------------------------------------------------------------
@pytest.fixture
def unk_loving(sat: dict, monkeypatch: pytest.MonkeyPatch) -> Captioner:
    """A fresh captioner whose decoder (every instance of its class, so the command line's
    too) puts <unk> far ahead of every other word at every step."""
    captioner = Captioner.from_checkpoint(sat["ckpt"], device="cpu")
    decoder_class = type(captioner.model.decoder)
    step = decoder_class.step

    def biased(self, prev_tokens, state, enc):  # noqa: ANN001, ANN202
        out = step(self, prev_tokens, state, enc)
        logits = out.logits.clone()
        logits[:, UNK] += 50.0
        return out._replace(logits=logits)

    monkeypatch.setattr(decoder_class, "step", biased)
    return captioner


@pytest.mark.parametrize("beam", [1, 3])
def test_api_never_says_unk_unless_allowed(sat: dict, unk_loving: Captioner, beam: int) -> None:
    images = sat["images"][:2]
    for captions in unk_loving.caption(images, beam_size=beam, nbest=beam):
        assert captions and all("<unk>" not in c.words for c in captions)
    allowed = unk_loving.caption(images, beam_size=beam, suppress_unk=False)
    assert all(captions[0].words[0] == "<unk>" for captions in allowed)


def test_cli_never_says_unk_unless_allow_unk(
    sat: dict, unk_loving: Captioner, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run([sat["ckpt"], sat["images"][0], "--device", "cpu"], capsys)
    assert code == 0, err
    assert out.count("logprob:") == 1 and "<unk>" not in out
    code, out, err = _run([sat["ckpt"], sat["images"][0], "--device", "cpu", "--allow-unk"], capsys)
    assert code == 0, err
    assert "<unk>" in out.splitlines()[1]


def test_translation_command_lines_keep_unk_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    from seq2seq.cli import common, translate

    seen = []

    def from_checkpoint(path, decode_config, **kwargs):  # noqa: ANN001, ANN202
        seen.append(decode_config.suppress_unk)

    monkeypatch.setattr(common.Translator, "from_checkpoint", from_checkpoint)
    common.load_translator(translate.build_parser().parse_args(["model.ckpt"]))
    common.load_translator(translate.build_parser().parse_args(["model.ckpt", "--suppress-unk"]))
    assert seen == [False, True]


def test_max_image_pixels_in_api_and_cli(
    sat: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = sat["images"][0]  # 48 x 48 = 2,304 pixels
    strict = Captioner.from_checkpoint(sat["ckpt"], device="cpu", max_image_pixels=1000)
    with pytest.raises(
        ImageError, match=r"48x48 = 2,304 pixels.*1,000 pixels \(max_image_pixels\)"
    ):
        strict.caption([image])
    with pytest.raises(ValueError, match="max_image_pixels must be a positive number"):
        Captioner.from_checkpoint(sat["ckpt"], device="cpu", max_image_pixels=0)
    code, out, err = _run([sat["ckpt"], image, "--max-image-pixels", "1000"], capsys)
    assert code == 1 and out == "" and err.count("\n") == 1
    assert err.startswith(f"error: {image}: image is 48x48 = 2,304 pixels, over the limit of 1,000")
    assert "raise --max-image-pixels" in err
    code, out, err = _run([sat["ckpt"], image, "--max-image-pixels", "5000"], capsys)
    assert code == 0 and out.count("logprob:") == 1
