"""The page in a real headless Chromium: translate a sentence, caption an uploaded image, look
at a word's attention, and save a screenshot (to docs/serve_page.png with
SEQ2SEQ_SAVE_SCREENSHOT=1)."""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from seq2seq.serve.app import create_app
from tests.serve.conftest import TEST_LIMITS, live_server

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
DOCS = Path(__file__).resolve().parents[2] / "docs"

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    pytest.skip(
        f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}): "
        "apt-get install chromium chromium-driver",
        allow_module_level=True,
    )

from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

#: Drops a PNG (base64, the script's argument) named dropped.png on the drop zone.
DROP = """
const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));
const transfer = new DataTransfer();
transfer.items.add(new File([bytes], "dropped.png", {type: "image/png"}));
document.getElementById("drop-zone").dispatchEvent(
  new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
"""


#: The captioned picture's canvas as a data URL.
PIXELS = 'return document.querySelector(".captioned canvas").toDataURL();'


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1100,1700",
    ):  # fmt: skip
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


def test_page_translates_and_captions_with_attention(
    models: dict, scene_images: list[Path], browser, tmp_path: Path
) -> None:
    app = create_app(**models, limits=TEST_LIMITS, max_wait_ms=5)
    with live_server(app) as url:
        browser.get(url + "/")
        wait = WebDriverWait(browser, 30)
        wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "serving translation"))

        browser.find_element(By.ID, "source").send_keys("the dogs saw the king .")
        browser.find_element(By.ID, "translate-button").click()
        translation = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".translation")))
        assert "logprob" in translation.text
        heatmap = translation.find_element(By.CSS_SELECTOR, "canvas.heatmap")
        assert heatmap.size["width"] > 50 and heatmap.size["height"] > 50

        browser.find_element(By.ID, "image-input").send_keys(str(scene_images[0]))
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".caption-list li")))
        captions = browser.find_elements(By.CSS_SELECTOR, ".caption-list li")
        assert captions and all("logprob" in c.text for c in captions)
        word = browser.find_element(By.CSS_SELECTOR, ".caption-list .word")
        ActionChains(browser).move_to_element(word).perform()
        wait.until(lambda _: "active" in word.get_attribute("class"))
        assert not browser.find_element(By.ID, "caption-error").is_displayed()

        # Dropping a file on the zone captions it too (the mouse moved away first, so that no
        # word of the new captions appears under it).
        ActionChains(browser).move_to_element(browser.find_element(By.TAG_NAME, "h1")).perform()
        browser.execute_script(DROP, base64.b64encode(scene_images[1].read_bytes()).decode())
        wait.until(ec.text_to_be_present_in_element((By.ID, "captions"), "dropped.png"))
        plain = browser.execute_script(PIXELS)
        word = browser.find_element(By.CSS_SELECTOR, ".caption-list .word")
        ActionChains(browser).move_to_element(word).perform()
        wait.until(lambda _: "active" in word.get_attribute("class"))
        assert browser.execute_script(PIXELS) != plain  # the word's attention is drawn over it

        shot = tmp_path / "serve_page.png"
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        if os.environ.get("SEQ2SEQ_SAVE_SCREENSHOT") == "1":
            shutil.copyfile(shot, DOCS / "serve_page.png")
