"""What the serving tests share: a tiny translation and a tiny captioning checkpoint trained
once per session, scene images to upload, and real uvicorn servers on 127.0.0.1."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from seq2seq.cli.train import train
from seq2seq.serve.app import create_app
from seq2seq.serve.limits import Limits
from seq2seq.serve.models import CaptioningModel, TranslationModel
from seq2seq.serve.server import server_config
from tests.conftest import compose_config, one_thread


@pytest.fixture(scope="session")
def translation_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("serve_translation")
    with one_thread():
        result = train(compose_config(base, "test=false", "trainer.max_epochs=1"))
    return Path(result["run_dir"]) / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="session")
def captioning_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """The Show-Attend-Tell checkpoint and the debug scenes' test images."""
    base = tmp_path_factory.mktemp("serve_captioning")
    with one_thread():
        result = train(
            compose_config(base, "experiment=shapes_sat", "test=false", "trainer.max_epochs=1")
        )
    images = sorted((base / "data" / "scenes-debug" / "images").glob("test_*.png"))
    assert images, "the debug scenes should include test images"
    return Path(result["run_dir"]) / "checkpoints" / "last.ckpt", images


@pytest.fixture(scope="session")
def captioning_ckpt(captioning_run: tuple[Path, list[Path]]) -> Path:
    return captioning_run[0]


@pytest.fixture(scope="session")
def scene_images(captioning_run: tuple[Path, list[Path]]) -> list[Path]:
    return captioning_run[1]


#: The test servers' deadline for request headers.
HEADER_TIMEOUT_S = 1.0

#: Limits small enough that the hostile tests stay fast.
TEST_LIMITS = Limits(
    max_text_chars=200,
    max_texts=8,
    max_images=3,
    max_image_bytes=200_000,
    max_image_pixels=1_000_000,
    max_body_bytes=1_000_000,
    body_timeout_s=1.0,
    max_nbest=3,
)


@pytest.fixture(scope="session")
def models(translation_ckpt: Path, captioning_ckpt: Path) -> dict:
    return {
        "translation": TranslationModel.load(translation_ckpt, beam=3),
        "captioning": CaptioningModel.load(
            captioning_ckpt, beam=3, max_image_pixels=TEST_LIMITS.max_image_pixels
        ),
    }


@contextlib.contextmanager
def live_server(app: object) -> Iterator[str]:
    """Run ``app`` under a real uvicorn on 127.0.0.1 (a free port) in a thread; yields its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = server_config(app, port=port, header_timeout_s=HEADER_TIMEOUT_S, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="module")
def server_url(models: dict) -> Iterator[str]:
    """A server holding both models, under :data:`TEST_LIMITS`."""
    with one_thread():
        app = create_app(**models, limits=TEST_LIMITS, max_batch=16, max_wait_ms=20)
        with live_server(app) as url:
            yield url
