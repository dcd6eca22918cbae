"""A real browser (Debian's Chromium driven by Playwright): sign in, filter, open a suggestion, see the chart.

Screenshots go to test-artifacts/. Chromium is installed with apt-get when missing and
this runs as root with apt available; otherwise the test is skipped with the reason.
Never ``playwright install``: the browser is the system's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from tests.review_world import build_world

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def _chromium() -> str | None:
    """None when Chromium is there (installing it if we may), else why not."""
    if os.path.exists(CHROMIUM):
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return f"{CHROMIUM} is missing and apt-get cannot install it here (not root, or no apt)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
        if subprocess.run(command, env=env, capture_output=True, timeout=600).returncode != 0:
            return f"{' '.join(command)} failed, so there is no {CHROMIUM}"
    return None if os.path.exists(CHROMIUM) else f"apt-get installed chromium but {CHROMIUM} is not there"


@pytest.fixture
def browser():  # type: ignore[no-untyped-def]
    sync_api = pytest.importorskip("playwright.sync_api")
    reason = _chromium()
    if reason:
        pytest.skip(reason)
    with sync_api.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield instance
        instance.close()


@pytest.fixture
def server(rt, app):  # type: ignore[no-untyped-def]
    world = build_world(rt)
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield world, f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


def test_a_supervisor_signs_in_filters_opens_a_suggestion_and_sees_the_chart(server, browser) -> None:
    world, base = server
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{base}/review/")
    assert "/review/sign-in" in page.url
    page.get_by_label("Access token").fill(world.tokens["supervisor"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/review/")
    assert page.get_by_role("heading", name="Suggestion log", level=1).is_visible()
    page.screenshot(path=str(ARTIFACTS / "review-log.png"), full_page=True)

    page.get_by_label("Decision").select_option("suggest")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**decision=suggest**")
    rows = page.locator("table.log tbody tr")
    assert rows.count() > 0
    assert all("Suggested a practice" in rows.nth(i).inner_text() for i in range(rows.count()))
    assert "Dr. Lind" not in page.content()  # not a supervisee
    page.screenshot(path=str(ARTIFACTS / "review-log-filtered.png"), full_page=True)

    rows.first.get_by_role("link").click()
    page.wait_for_url("**/review/suggestions/**")
    assert page.get_by_role("heading", name="Why Tend decided this").is_visible()
    assert page.get_by_role("heading", name="Conditions that held").is_visible()
    page.screenshot(path=str(ARTIFACTS / "review-suggestion.png"), full_page=True)

    page.get_by_role("link", name="Weekly charts").click()
    page.wait_for_url(f"{base}/review/charts")
    chart = page.locator("svg.chart").first
    assert chart.is_visible()
    assert chart.locator("rect").count() > 4
    assert chart.get_attribute("role") == "img"
    page.screenshot(path=str(ARTIFACTS / "review-charts.png"), full_page=True)


def test_the_log_is_readable_on_a_phone_and_works_by_keyboard(server, browser) -> None:
    world, base = server
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    page.goto(f"{base}/review/sign-in")
    page.keyboard.press("Tab")  # the skip link comes first
    assert page.evaluate("document.activeElement.textContent") == "Skip to the content"
    page.get_by_label("Access token").focus()
    page.keyboard.type(world.tokens["admin"])
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/review/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1  # no sideways scrolling
    page.screenshot(path=str(ARTIFACTS / "review-log-phone.png"), full_page=False)
