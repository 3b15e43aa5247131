"""
End-to-end tests: Playwright for Python driving Debian's Chromium (/usr/bin/chromium, installed
by .ci/run; no browser download) against pytest-django's live server.
"""

import contextlib
import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("DEBRIEF_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"


@pytest.fixture(scope="session")
def browser():
    if not shutil.which(CHROMIUM):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Chromium is missing at {CHROMIUM}; .ci/run installs it")
        pytest.skip(f"needs Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the live server and the
    # factories still talk to the database synchronously, which is safe here. Only for
    # these tests: nothing else may inherit the switch.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        yield from _launch(sync_playwright)
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def _launch(sync_playwright):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


@contextlib.contextmanager
def opened_page(browser, base_url: str, *, viewport=None, bypass_csp: bool = False):
    """
    A page in a context of its own; on leaving, the JavaScript errors it met (and any script
    or style the Content-Security-Policy blocked) fail the test.
    """
    context = browser.new_context(
        base_url=base_url,
        viewport=viewport or {"width": 1280, "height": 900},
        bypass_csp=bypass_csp,
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    page.errors = errors
    yield page
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


@pytest.fixture
def page(browser, live_server):
    with opened_page(browser, live_server.url) as page:
        yield page


@pytest.fixture
def axe_page(browser, live_server):
    """
    A page whose context lets axe's inline script run: the Content-Security-Policy rightly
    blocks it, and the journeys test the policy; this context only checks accessibility.
    """
    with opened_page(browser, live_server.url, bypass_csp=True) as page:
        yield page


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def login(page, email: str, password: str) -> None:
    page.goto("/accounts/login/")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/plan/")


def logout(page) -> None:
    page.click("button:has-text('Log out')")
    page.wait_for_url("**/accounts/login/")


def settle(page) -> None:
    """
    Let htmx requests finish and their indicators fade before a page is judged: an indicator
    mid-fade (opacity between 0 and 1) reads as low contrast. A page that keeps polling gets
    three seconds.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    with contextlib.suppress(PlaywrightTimeout):
        page.wait_for_function(
            """() => !document.querySelector('.htmx-request') &&
                [...document.querySelectorAll('.htmx-indicator')].every(
                    (e) => getComputedStyle(e).opacity === '0')""",
            timeout=3_000,
        )


def axe_violations(page, impacts=("serious", "critical")) -> list[dict]:
    """
    Run axe-core on the current page; the serious and critical violations. axe is evaluated
    through the browser's debugging protocol, not as a <script>, so pages are checked under
    the Content-Security-Policy they ship with.
    """
    settle(page)
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate("async () => await axe.run(document)")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
        if v["impact"] in impacts
    ]
