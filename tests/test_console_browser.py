"""The farm console in a real browser: headless Chromium (Debian's ``chromium`` and ``chromium-driver``)
driven by Selenium, against the console served by uvicorn.

A reviewer logs in with the token, approves one candidate with the keyboard, rejects one, edits one,
and the next ticks post what was approved to the outbox; the loss chart renders. In the model page's
playground, a reviewer generates samples from a tiny real model and sends a pick to the queue. Screenshots are
saved as PNG under the test's tmp_path. Skips, saying why, only where Chromium cannot be had
(install it with: apt-get install -y chromium chromium-driver).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from console_farm import POSTS, SCRIPT, SECRET, SECRET_ENV, TOKEN, live_console, make_farm, make_model_farm, outbox, tick, train_tiny

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture
def browser() -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip(f"no {CHROMIUM} or {CHROMEDRIVER} (apt-get install -y chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1400"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


def shoot(driver: Any, folder: Path, name: str) -> Path:
    path = folder / "screenshots" / f"{name}.png"
    path.parent.mkdir(exist_ok=True)
    assert driver.save_screenshot(str(path)) and path.read_bytes().startswith(b"\x89PNG")
    return path


def press(driver: Any, key: str) -> None:
    """A key pressed on the page (not in a text field), as a reviewer types it."""
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(key).perform()


def wait_until(driver: Any, condition: Any) -> None:
    """Wait for a page the browser is still loading (a click or a key press returns before it has)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 10, ignored_exceptions=(StaleElementReferenceException,)).until(condition)


def expect_message(driver: Any, text: str) -> None:
    """The bot page after a decision says ``text``, and its keyboard script is ready for the next key."""
    from selenium.webdriver.common.by import By

    wait_until(driver, lambda d: text in [e.text for e in d.find_elements(By.CSS_SELECTOR, "p.done, p.already")])
    wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "li.candidate.selected"))


def test_review_in_the_browser_and_post_on_the_next_tick(browser: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from selenium.webdriver.common.by import By

    monkeypatch.setenv(SECRET_ENV, SECRET)
    farm = make_farm(tmp_path)
    with live_console(farm) as url:
        browser.get(f"{url}/bots/apple")
        assert browser.current_url == f"{url}/login?next=%2Fbots%2Fapple" and "first post" not in browser.page_source
        browser.find_element(By.ID, "token").send_keys("not-the-token-0123456789")
        browser.find_element(By.ID, "login").click()
        assert browser.find_element(By.ID, "problem").text == "wrong token"
        browser.find_element(By.ID, "token").send_keys(TOKEN.value)
        browser.find_element(By.ID, "login").click()
        wait_until(browser, lambda d: d.current_url == f"{url}/bots/apple")
        cookie = browser.get_cookie("botkit_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

        # The <script> sample shows as text and never runs.
        texts = [element.text for element in browser.find_elements(By.CSS_SELECTOR, "li.candidate pre.text")]
        assert texts == POSTS and browser.title == "apple · botkit console"
        shoot(browser, tmp_path, "1-queue")

        ids = [int(element.get_attribute("id").split("-")[1]) for element in browser.find_elements(By.CSS_SELECTOR, "li.candidate")]
        wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "li.candidate.selected"))
        press(browser, "a")  # approve the first
        expect_message(browser, f"candidate {ids[0]} approved")
        press(browser, "j")
        press(browser, "j")
        press(browser, "r")  # reject the third of those left: "four"
        expect_message(browser, f"candidate {ids[3]} rejected")
        edited = browser.find_element(By.CSS_SELECTOR, f"#candidate-{ids[2]} textarea")
        edited.clear()
        edited.send_keys("number three, edited by hand")
        browser.find_element(By.CSS_SELECTOR, f"#candidate-{ids[2]} button.edit").click()
        expect_message(browser, f"candidate {ids[2]} edited and approved")
        assert [element.text for element in browser.find_elements(By.CSS_SELECTOR, "li.candidate pre.text")] == [SCRIPT, "and five"]
        shoot(browser, tmp_path, "2-reviewed")

        tick(tmp_path)
        tick(tmp_path)
        assert outbox(tmp_path) == ["the first post", "number three, edited by hand"]
        browser.refresh()
        history = browser.find_element(By.CSS_SELECTOR, "table.history").text
        assert "number three, edited by hand" in history and "the first post" in history
        assert "four" in browser.find_element(By.CSS_SELECTOR, "table.rejected").text
        assert browser.execute_script("return document.getElementById('funnel-chart').naturalWidth") > 100

        browser.get(f"{url}/")
        assert "2 posts" in browser.find_element(By.ID, "bot-apple").text and SECRET not in browser.page_source
        shoot(browser, tmp_path, "3-farm")

        browser.get(f"{url}/bots/pear/model")
        assert browser.execute_script("const c = document.getElementById('loss-chart'); return c.complete && c.naturalWidth") > 100
        shoot(browser, tmp_path, "4-model")
    artefacts = sorted(p.name for p in (tmp_path / "screenshots").iterdir())
    assert artefacts == ["1-queue.png", "2-reviewed.png", "3-farm.png", "4-model.png"]


def test_playground_in_the_browser_sends_a_pick_to_the_queue(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    with live_console(make_model_farm(tmp_path, train_tiny(tmp_path))) as url:
        browser.get(f"{url}/bots/plum/model")
        browser.find_element(By.ID, "token").send_keys(TOKEN.value)
        browser.find_element(By.ID, "login").click()
        wait_until(browser, lambda d: d.current_url == f"{url}/bots/plum/model")

        def generate(n: int, prefix: str) -> None:
            for name, value in (("n", str(n)), ("prefix", prefix)):
                field = browser.find_element(By.NAME, name)
                field.clear()
                field.send_keys(value)
            browser.find_element(By.ID, "generate").click()

        generate(3, "<script>x")  # every sample is rejected by the banned word, and shows as text
        wait_until(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "li.sample.rejected")) == 3)
        assert all(e.text.startswith("<script>x") for e in browser.find_elements(By.CSS_SELECTOR, "li.sample pre.text"))
        assert browser.title == "plum: model · botkit console"
        generate(4, "plum ")
        wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "li.sample.passed"))
        first = browser.find_element(By.CSS_SELECTOR, "li.sample.passed")
        text = first.find_element(By.CSS_SELECTOR, "pre.text").text
        first.find_element(By.NAME, "pick").click()
        shoot(browser, tmp_path, "5-playground")
        browser.find_element(By.ID, "send-picked").click()
        expect_message(browser, "1 sample(s) from the playground sent to the queue")
        queued = browser.find_element(By.CSS_SELECTOR, "li.candidate")
        assert queued.find_element(By.CSS_SELECTOR, "pre.text").text == text
        candidate = queued.get_attribute("id").split("-")[1]
        press(browser, "a")  # the last one in the queue: no other is selected after it
        wait_until(browser, lambda d: f"candidate {candidate} approved" in [e.text for e in d.find_elements(By.CSS_SELECTOR, "p.done")])
