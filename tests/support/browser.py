"""A real browser for the pages a person opens (the docs page, the subscriber's page): Debian's
chromium, driven by Playwright through its executable_path (browser downloads are not
reachable), against the app served in a thread."""

import os
import shutil
import threading
from contextlib import contextmanager

import pytest
from werkzeug.serving import make_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@contextmanager
def served_in_a_thread(app):
    """The app on a loopback port, in a thread (werkzeug's server): its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


@contextmanager
def browser_page(init_script: str | None = None, **context_options):
    """A chromium page (in a context of these options) and the problems it meets: console
    errors, page errors, failed requests, answers of 400 and more. Without chromium the test
    skips, except in CI, which installs it."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing: .ci/run installs it (apt-get install chromium)")
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            context = browser.new_context(**context_options)
            if init_script is not None:
                context.add_init_script(init_script)
            page = context.new_page()
            add = problems.append
            page.on(
                "console", lambda m: m.type == "error" and add(f"{m.text} ({m.location['url']})")
            )
            page.on("pageerror", lambda error: add(str(error)))
            page.on("requestfailed", lambda request: add(f"failed: {request.url}"))
            page.on("response", lambda r: r.status >= 400 and add(f"{r.status}: {r.url}"))
            yield page, problems
        finally:
            browser.close()
