"""The JoeyNMT side-by-side recipe's pieces that need neither JoeyNMT nor a training run: the
config it writes, the decoding configs derived from it, the log parsing and the scoring."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import sacrebleu
import yaml

PEERS = Path(__file__).resolve().parents[2] / "recipes" / "peers"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, PEERS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def peers(tmp_path_factory):
    """Both modules, imported from their files (the recipe runs them as scripts)."""
    saved = sys.path[:]
    sys.path.insert(0, str(PEERS))
    try:
        yield _load("joeynmt_quality"), _load("joeynmt_compare")
    finally:
        sys.path[:] = saved
        sys.modules.pop("joeynmt_quality", None)
        sys.modules.pop("joeynmt_compare", None)


def _settings(compare, tmp_path: Path, epochs: int = 1, vocab: int = 8000) -> dict:
    spm = {lang: tmp_path / f"spm.{lang}.model" for lang in ("en", "es")}
    return compare.joeynmt_settings(tmp_path / "data", tmp_path / "model", spm, epochs, vocab)


def test_config_matches_ours_and_round_trips(peers, tmp_path: Path) -> None:
    quality, compare = peers
    settings = _settings(compare, tmp_path, epochs=1, vocab=500)
    path = quality.write_yaml(settings, tmp_path / "joey.yaml")
    loaded = yaml.safe_load(path.read_text())
    assert loaded == settings
    assert loaded["training"]["epochs"] == 1
    assert loaded["training"]["batch_size"] == 4000
    assert loaded["data"]["src"]["voc_limit"] == loaded["data"]["trg"]["voc_limit"] == 500
    assert loaded["data"]["trg"]["tokenizer_cfg"]["model_file"].endswith("spm.es.model")
    assert loaded["testing"]["beam_alpha"] == quality.LENGTH_PENALTY == 1.0
    assert loaded["testing"]["sacrebleu_cfg"] == {"tokenize": "13a"}
    encoder, decoder = loaded["model"]["encoder"], loaded["model"]["decoder"]
    assert encoder["bidirectional"] and decoder["attention"] == "bahdanau"
    assert encoder["hidden_size"] == decoder["hidden_size"] == 256


def test_decode_settings_change_a_copy(peers, tmp_path: Path) -> None:
    quality, compare = peers
    settings = _settings(compare, tmp_path)
    decode = quality.decode_settings(settings, 1, tmp_path / "model" / "12.ckpt")
    assert decode["testing"]["beam_size"] == 1
    assert decode["testing"]["load_model"] == str(tmp_path / "model" / "12.ckpt")
    assert "test" not in decode["data"] and decode["data"]["dev"] == settings["data"]["dev"]
    # The training config is untouched.
    assert settings["testing"]["beam_size"] == 5 and "test" in settings["data"]
    assert "load_model" not in settings["testing"]


def test_joeynmt_log_parsing(peers) -> None:
    quality, _ = peers
    log = (
        "2026-12-02 07:40:01 - INFO - joeynmt.training - Epoch   1, total training loss: "
        "3155.12, num. of seqs: 300, num. of tokens: 12000, 20.0000[sec]\n"
        "2026-12-02 07:41:00 - INFO - joeynmt.prediction - Evaluation result (greedy): "
        "bleu:   1.23, loss:  10.00, ppl:  20.00, acc:   0.10, 0.0100[sec]\n"
    )
    assert quality.joeynmt_epoch_stats(log) == {
        "logged_tokens": 12000,
        "logged_train_s": 20.0,
        "logged_tokens_per_s": 600.0,
    }
    assert quality.joeynmt_epoch_stats("nothing here") == {}
    assert float(quality.JOEY_DEV_BLEU.search(log).group(1)) == 1.23


def test_rates_leave_out_the_warm_up(peers, tmp_path: Path) -> None:
    _, compare = peers
    assert compare.median_after_warmup([100.0, 500.0, 700.0, 600.0]) == 600.0
    assert compare.median_after_warmup([300.0]) == 300.0
    assert compare.median_after_warmup([]) is None
    run = tmp_path / "run"
    (run / "csv").mkdir(parents=True)
    (run / "csv" / "metrics.csv").write_text(
        "step,train/tokens_per_s,train/loss\n19,50.0,\n19,,5.0\n39,2000.0,\n59,2200.0,\n"
    )
    assert compare.ours_rate(run) == 2100.0
    assert compare.ours_rate(tmp_path / "missing") is None


def test_score_is_sacrebleu_13a_and_chrf(peers, tmp_path: Path) -> None:
    quality, _ = peers
    refs = ["Y dijo Dios: Sea la luz.", "Y fué la luz."]
    hyps = ["Y dijo Dios: sea la luz.", "Y fue la luz."]
    (tmp_path / "ref").write_text("\n".join(refs) + "\n")
    (tmp_path / "hyp").write_text("\n".join(hyps) + "\n")
    result = quality.score(tmp_path / "hyp", tmp_path / "ref")
    assert result["lines"] == 2
    assert result["bleu"] == round(sacrebleu.corpus_bleu(hyps, [refs], tokenize="13a").score, 2)
    assert result["chrf"] == round(sacrebleu.corpus_chrf(hyps, [refs]).score, 2)
    assert "tok:13a" in result["signature"]
    (tmp_path / "short").write_text("only one line\n")
    with pytest.raises(ValueError, match="1 lines"):
        quality.score(tmp_path / "short", tmp_path / "ref")


def test_failed_decoding_is_reported_not_raised(peers, tmp_path: Path) -> None:
    quality, _ = peers
    (tmp_path / "ref").write_text("a\nb\n")
    entry = quality._scored(tmp_path / "absent", tmp_path / "ref", 1.5, 1, tmp_path / "x.log")
    assert entry["error"].startswith("decoding failed (exit 1)") and entry["decode_s"] == 1.5
    row = quality.table({"seq2seq": {"epoch_s": 3.0, "decoding": {"1": entry}}})
    assert "| seq2seq | 3.0 | 1 | - | - | 1.5 |" in row
