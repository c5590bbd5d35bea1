"""Browser fixtures: one Chromium per test module, a fresh context per test.

Every page is watched: uncaught exceptions, console errors and any request to
a host other than the local server fail the test at teardown.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.browser.helpers import backfill

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}

DESKTOP = {"width": 1440, "height": 900}
TABLET = {"width": 768, "height": 1024}


# Module scope, not session: a live sync_playwright() keeps an asyncio loop
# marked as running on the main thread, which breaks asyncio.run() in any
# test that runs after it.
@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield b
        b.close()


@dataclass
class PageWatch:
    """What a page did that a user would consider a bug."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    # A test that takes the server down on purpose expects failed requests.
    allow_network_errors: bool = False

    def foreign_requests(self) -> list[str]:
        out = []
        for url in self.requests:
            parts = urlsplit(url)
            if parts.scheme in ("data", "blob", "about"):
                continue
            if parts.hostname not in LOCAL_HOSTS:
                out.append(url)
        return out

    def check(self) -> None:
        assert not self.page_errors, f"uncaught exceptions: {self.page_errors}"
        assert not self.dialogs, f"page opened dialogs (script ran?): {self.dialogs}"
        assert not self.foreign_requests(), f"requests left localhost: {self.foreign_requests()}"
        errors = self.console_errors
        if self.allow_network_errors:
            errors = [e for e in errors if "net::ERR_" not in e and "Failed to load" not in e]
        assert not errors, f"console errors: {errors}"


def _watch(page: Any) -> PageWatch:
    w = PageWatch()

    def on_console(m: Any) -> None:
        if m.type == "error":
            w.console_errors.append(f"{m.text} @ {m.location}")

    page.on("console", on_console)
    page.on("pageerror", lambda e: w.page_errors.append(str(e)))
    page.on("request", lambda r: w.requests.append(r.url))

    def on_dialog(d: Any) -> None:
        w.dialogs.append(f"{d.type}: {d.message}")
        d.dismiss()

    page.on("dialog", on_dialog)
    return w


# Pages depend on `server_factory` so that they close before the servers stop:
# a page left open would see its next refresh (live events trigger them) fail
# against a server that is already gone.
@pytest.fixture
def page(browser: Any, server_factory: Any) -> Iterator[Any]:
    """A desktop-sized page; checked for errors and foreign requests at teardown."""
    ctx = browser.new_context(viewport=DESKTOP)
    p = ctx.new_page()
    p.set_default_timeout(10_000)
    w = _watch(p)
    p.watch = w  # type: ignore[attr-defined]
    yield p
    ctx.close()
    w.check()


@pytest.fixture
def tablet_page(browser: Any, server_factory: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport=TABLET)
    p = ctx.new_page()
    p.set_default_timeout(10_000)
    w = _watch(p)
    p.watch = w  # type: ignore[attr-defined]
    yield p
    ctx.close()
    w.check()


@pytest.fixture
def demo_server(server: Any) -> Any:
    """A server holding the demo's 7-day backfill."""
    backfill(server)
    return server
