"""The JSON API through FastAPI's TestClient: what /translate, /caption and /health answer."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from seq2seq.cli import serve as serve_cli
from seq2seq.cli.train import train
from seq2seq.serve.app import create_app
from seq2seq.serve.models import CaptioningModel, checkpoint_task
from tests.conftest import compose_config
from tests.serve.conftest import TEST_LIMITS


@pytest.fixture(scope="module")
def client(models: dict) -> Iterator[TestClient]:
    with TestClient(create_app(**models, limits=TEST_LIMITS)) as test_client:
        yield test_client


def _upload(path: Path) -> tuple[str, tuple[str, bytes, str]]:
    return ("images", (path.name, path.read_bytes(), "image/png"))


def test_translate_returns_nbest_with_logprobs_and_alignment(client: TestClient) -> None:
    texts = ["the king sleeps .", "the dogs saw the cat .", ""]
    response = client.post("/translate", json={"texts": texts, "nbest": 2, "alignment": True})
    assert response.status_code == 200
    translations = response.json()["translations"]
    assert len(translations) == 3
    for hyps in translations[:2]:
        assert len(hyps) == 2
        for hyp in hyps:
            assert hyp["logprob"] <= 0 and isinstance(hyp["text"], str)
            alignment = hyp["alignment"]
            rows, cols = alignment["weights"], alignment["source_tokens"]
            # One row per target token (</s> included), one column per source token read.
            assert len(rows) == len(alignment["target_tokens"]) >= 1
            assert all(len(row) == len(cols) for row in rows)
            assert all(abs(sum(row) - 1) < 1e-2 for row in rows)  # padding gets nothing
    # The shorter sentence was padded in the batch; its alignment is cut to its own tokens.
    assert translations[0][0]["alignment"]["source_tokens"] != []
    short, long = (translations[i][0]["alignment"]["source_tokens"] for i in (0, 1))
    assert len(short) < len(long)
    assert translations[2][0]["text"] == "" and translations[2][0]["alignment"] is None


def test_translate_without_alignment_leaves_it_out(client: TestClient) -> None:
    response = client.post("/translate", json={"texts": ["the king sleeps ."]})
    assert response.status_code == 200
    (hyp,) = response.json()["translations"][0]
    assert set(hyp) == {"text", "logprob"}


def test_caption_returns_captions_attention_and_the_model_input(
    client: TestClient, scene_images: list[Path]
) -> None:
    files = [_upload(p) for p in scene_images[:2]]
    response = client.post("/caption", files=files, data={"nbest": "2", "attention": "true"})
    assert response.status_code == 200
    results = response.json()["images"]
    assert [r["name"] for r in results] == [p.name for p in scene_images[:2]]
    for result in results:
        height, width = result["grid"]
        assert 1 <= len(result["captions"]) <= 2
        for caption in result["captions"]:
            assert caption["logprob"] <= 0 and caption["text"] == " ".join(caption["words"])
            rows = caption["attention"]
            assert len(rows) in (len(caption["words"]), len(caption["words"]) + 1)
            assert all(len(row) == height * width for row in rows)
            assert all(abs(sum(row) - 1) < 1e-2 for row in rows)
        prefix = "data:image/png;base64,"
        assert result["input_image"].startswith(prefix)
        picture = Image.open(io.BytesIO(base64.b64decode(result["input_image"][len(prefix) :])))
        assert picture.size == (48, 48)  # the debug model's input, which the grid lies over


def test_caption_without_attention_sends_captions_only(
    client: TestClient, scene_images: list[Path]
) -> None:
    response = client.post("/caption", files=[_upload(scene_images[0])])
    assert response.status_code == 200
    (result,) = response.json()["images"]
    assert set(result) == {"name", "captions"}
    assert set(result["captions"][0]) == {"text", "words", "logprob"}


def test_health_names_tasks_and_limits(client: TestClient) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert health["tasks"] == ["translation", "captioning"]
    assert health["limits"]["max_texts"] == TEST_LIMITS.max_texts
    assert health["model_calls"]["translation"] >= 1


def test_page_and_its_files_are_served_and_load_nothing_from_the_network(
    client: TestClient,
) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for asset in ("/static/app.js", "/static/style.css"):
        response = client.get(asset)
        assert response.status_code == 200
        assert not re.search(r"https?://", response.text)
    assert not re.search(r"https?://", page.text)
    assert client.get("/docs").status_code == 404  # FastAPI's docs would load a CDN


def test_a_server_without_a_task_answers_404_for_it(translation_ckpt: Path, models: dict) -> None:
    with TestClient(create_app(translation=models["translation"])) as only_text:
        response = only_text.post("/caption", files=[("images", ("a.png", b"x", "image/png"))])
        assert response.status_code == 404
        assert response.json()["error"] == "this server holds no captioning model"
        assert only_text.get("/health").json()["tasks"] == ["translation"]


def test_task_is_read_from_the_checkpoint(translation_ckpt: Path, captioning_ckpt: Path) -> None:
    assert checkpoint_task(translation_ckpt) == "translation"
    assert checkpoint_task(captioning_ckpt) == "captioning"


def test_cli_refuses_two_checkpoints_of_one_task_and_bad_files(
    translation_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert serve_cli.main([str(translation_ckpt), str(translation_ckpt)]) == 2
    assert "both translation checkpoints" in capsys.readouterr().err
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    assert serve_cli.main([str(junk)]) == 2
    assert f"seq2seq-serve: error: checkpoint {junk} " in capsys.readouterr().err
    assert serve_cli.main([str(translation_ckpt), "--max-batch", "0"]) == 2
    assert "--max-batch must be at least 1" in capsys.readouterr().err
    assert serve_cli.build_parser().parse_args([str(junk)]).host == "127.0.0.1"


def test_a_model_without_attention_says_so(
    tmp_path_factory: pytest.TempPathFactory, scene_images: list[Path]
) -> None:
    base = tmp_path_factory.mktemp("serve_nic")
    result = train(
        compose_config(base, "experiment=shapes_nic", "test=false", "trainer.max_epochs=1")
    )
    nic = CaptioningModel.load(result["best_checkpoint"], beam=2, max_image_pixels=10**6)
    with TestClient(create_app(captioning=nic, limits=TEST_LIMITS)) as client:
        response = client.post(
            "/caption", files=[_upload(scene_images[0])], data={"attention": "1"}
        )
    assert response.status_code == 200
    (image,) = response.json()["images"]
    assert image["grid"] is None and image["captions"][0]["attention"] is None
    assert image["input_image"].startswith("data:image/png;base64,")


def test_cli_serves_both_checkpoints_on_loopback(
    translation_ckpt: Path, captioning_ckpt: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = []
    monkeypatch.setattr(serve_cli.uvicorn.Server, "run", lambda server: started.append(server))
    args = [str(captioning_ckpt), str(translation_ckpt), "--max-batch", "4", "--beam", "2"]
    assert serve_cli.main(args) == 0
    config = started[0].config
    assert (config.host, config.port, config.limit_concurrency) == ("127.0.0.1", 8000, 128)
    with TestClient(config.app) as client:
        health = client.get("/health").json()
    assert health["tasks"] == ["translation", "captioning"] and health["max_batch"] == 4
    # Both beams are raised to --max-nbest (5), so any nbest a request may ask for fits.
    assert health["beam"] == {"translation": 5, "captioning": 5}
