"""Hostile and broken requests against a real uvicorn on 127.0.0.1: each is refused with a
4xx JSON error naming the limit or rule, and the server keeps answering afterwards."""

from __future__ import annotations

import io
import json
import socket
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from seq2seq.serve.app import create_app
from tests.serve.conftest import HEADER_TIMEOUT_S, TEST_LIMITS

MB = 1024 * 1024


@pytest.fixture
def http(server_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server_url, timeout=30) as client:
        yield client
    # Whatever the test sent, the server still answers.
    assert httpx.get(server_url + "/health", timeout=10).status_code == 200


def _refused(response: httpx.Response, status: int, limit: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["limit"] == limit
    assert "\n" not in body["error"]
    return body["error"]


def _raw(url: str, data: bytes, wait: float = 10.0) -> tuple[bytes, float]:
    """Send ``data`` on a raw socket, then read until the server closes (or ``wait`` s pass);
    returns what came back and how long it took."""
    host, port = url.removeprefix("http://").split(":")
    start = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=wait) as sock:
        sock.sendall(data)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except TimeoutError:
            pass
    return received, time.monotonic() - start


def _status_and_json(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def _png_claiming(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header is rewritten to claim ``width`` x ``height`` pixels."""
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def test_a_50_mb_body_is_refused_before_it_is_read(server_url: str, http: httpx.Client) -> None:
    head = (
        "POST /translate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {50 * MB}\r\n\r\n"
    ).encode()
    raw, took = _raw(server_url, head)
    status, body = _status_and_json(raw)
    assert (status, body["limit"]) == (413, "max_body_bytes")
    assert f"{50 * MB:,} bytes" in body["error"] and took < 5


def test_a_50_mb_body_sent_in_full_is_refused(models: dict) -> None:
    # In-process, so that all 50 MB really reach the app (a real socket is closed on the
    # client mid-upload, which the test above covers).
    with TestClient(create_app(**models, limits=TEST_LIMITS)) as client:
        response = client.post(
            "/translate", content=b"x" * (50 * MB), headers={"content-type": "application/json"}
        )
        assert (response.status_code, response.json()["limit"]) == (413, "max_body_bytes")
        chunks = (b"x" * MB for _ in range(50))  # no Content-Length: counted while read
        response = client.post(
            "/translate", content=chunks, headers={"content-type": "application/json"}
        )
        assert (response.status_code, response.json()["limit"]) == (413, "max_body_bytes")
        assert client.get("/health").status_code == 200


def test_a_chunked_body_over_the_limit_is_refused_while_read(server_url: str) -> None:
    chunk = b"x" * 65536
    pieces = [f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"] * 17  # 1.1 MB > 1 MB
    head = (
        b"POST /translate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    raw, _ = _raw(server_url, head + b"".join(pieces))
    assert _status_and_json(raw)[0] == 413


def test_a_stalled_client_is_timed_out(server_url: str, http: httpx.Client) -> None:
    head = (
        b"POST /translate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n"
    )
    raw, took = _raw(server_url, head + b'{"texts": ["the king', wait=10)
    status, body = _status_and_json(raw)
    assert (status, body["limit"]) == (408, "body_timeout_s")
    # Answered after the 1 s body timeout, and the connection closed (recv returned b"").
    assert TEST_LIMITS.body_timeout_s <= took < 5


def test_a_client_stalling_in_its_headers_is_disconnected(
    server_url: str, http: httpx.Client
) -> None:
    raw, took = _raw(
        server_url, b"POST /translate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-", wait=10
    )
    assert raw == b""  # closed without a word: there is no request to answer yet
    assert HEADER_TIMEOUT_S <= took < 5


def test_invalid_utf8_is_refused(http: httpx.Client) -> None:
    response = http.post(
        "/translate",
        content=b'{"texts": ["caf\xe9"]}',
        headers={"content-type": "application/json"},
    )
    assert "not valid UTF-8" in _refused(response, 400, "encoding")
    lone = http.post(
        "/translate",
        content=b'{"texts": ["\\ud800"]}',
        headers={"content-type": "application/json"},
    )
    _refused(lone, 400, "encoding")


def test_wrong_content_types_are_refused(http: httpx.Client) -> None:
    as_text = http.post("/translate", content=b"the king sleeps .")
    assert "expected 'application/json'" in _refused(as_text, 415, "content_type")
    as_json = http.post("/caption", json={"images": []})
    assert "expected 'multipart/form-data'" in _refused(as_json, 415, "content_type")


def test_malformed_json_and_schema_are_refused(http: httpx.Client) -> None:
    headers = {"content-type": "application/json"}
    _refused(http.post("/translate", content=b'{"texts": [', headers=headers), 400, "json")
    assert "texts.0" in _refused(http.post("/translate", json={"texts": [3]}), 422, "schema")
    _refused(http.post("/translate", json={"text": "x"}), 422, "schema")


def test_text_limits_name_themselves(http: httpx.Client) -> None:
    long = "a " * TEST_LIMITS.max_text_chars
    assert "(max_text_chars)" in _refused(
        http.post("/translate", json={"texts": [long]}), 413, "max_text_chars"
    )
    many = ["the king sleeps ."] * (TEST_LIMITS.max_texts + 1)
    _refused(http.post("/translate", json={"texts": many}), 413, "max_texts")
    too_many = {"texts": ["x"], "nbest": TEST_LIMITS.max_nbest + 1}
    _refused(http.post("/translate", json=too_many), 422, "max_nbest")


def test_a_non_image_upload_is_refused(http: httpx.Client) -> None:
    files = [("images", ("notes.png", b"this is not a picture", "image/png"))]
    error = _refused(http.post("/caption", files=files), 400, "image_format")
    assert error == "notes.png: not an image file Pillow can read"  # names the upload


def test_a_decompression_bomb_is_refused_from_its_header(http: httpx.Client) -> None:
    bomb = _png_claiming(100_000, 100_000)
    assert len(bomb) < 100
    files = [("images", ("bomb.png", bomb, "image/png"))]
    error = _refused(http.post("/caption", files=files), 413, "max_image_pixels")
    assert "100000x100000 = 10,000,000,000 pixels" in error


def test_image_size_and_count_limits(http: httpx.Client, scene_images: list[Path]) -> None:
    big = [("images", ("big.bmp", b"BM" + b"\0" * TEST_LIMITS.max_image_bytes, "image/bmp"))]
    _refused(http.post("/caption", files=big), 413, "max_image_bytes")
    one = scene_images[0].read_bytes()
    files = [("images", (f"{i}.png", one, "image/png")) for i in range(TEST_LIMITS.max_images + 1)]
    _refused(http.post("/caption", files=files), 413, "max_images")
    _refused(http.post("/caption", data={"nbest": "1"}, files=[]), 415, "content_type")
