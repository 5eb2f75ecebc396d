"""Browser tests: a real scheduler and agent (tests/e2e's Cluster), Debian's chromium driven by
Playwright (no browser download), a screenshot of every page looked at under tests/artifacts/."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.e2e.conftest import cluster  # noqa: F401  (the same real installation)
from tests.e2e.harness import Cluster

CHROMIUM = os.environ.get("EASYTASK_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
# As root and on a closed network, chromium needs these (env skill: browser tests).
# Generous waits: each returns as soon as its condition holds, so only a slow machine (CI's 2
# cores, or other work beside the suite) ever spends them. Playwright's `expect` has its own
# default (5 s) apart from the page's.
PAGE_TIMEOUT_MS = 30_000
expect.set_options(timeout=20_000)
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
        "--disable-component-update", "--disable-sync", "--disable-quic"]  # fmt: skip


# Module scope: Playwright's sync API runs an event loop of its own, which must be gone before
# the asyncio tests of the other directories start.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: scripts/test installs Debian's chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def password_of(installation: Cluster) -> str:
    data = json.loads((installation.home / "credentials.json").read_text())
    return str(data["password"])


def new_page(browser: Browser) -> Page:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))
    page.errors = errors  # type: ignore[attr-defined]
    return page


def log_in(page: Page, installation: Cluster, username: str, password: str) -> None:
    page.goto(installation.dashboard + "/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(installation.dashboard + "/")


def shot(page: Page, name: str) -> None:
    """Light and dark screenshots of what the user sees now, for people to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    html = page.locator("html")
    for theme in ("light", "dark"):
        html.evaluate(f"el => el.dataset.theme = '{theme}'")
        page.screenshot(path=str(ARTIFACTS / f"{name}-{theme}.png"), full_page=True)
    html.evaluate("el => el.dataset.theme = 'auto'")
