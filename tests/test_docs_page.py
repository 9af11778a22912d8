"""The API's documents: every status the server answers itself (gunicorn's and the worker's:
400, 408, 413, 414, 417, 431, 501) is documented on every operation, and the docs page loads
in a real browser (Debian's chromium, driven by Playwright) with no console error and no
failed request: it names its own icon, so the browser never asks for /favicon.ico.
"""

from http import HTTPStatus

import pytest
from support.browser import browser_page, served_in_a_thread

from tickets_service.openapi import SERVER_ANSWERS

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def test_every_operation_documents_what_the_server_answers_itself(client):
    document = client.get("/api/v1/openapi.json").get_json()
    missing = {
        f"{method.upper()} {path}": sorted(
            code for code in SERVER_ANSWERS if str(code) not in operation["responses"]
        )
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    }
    assert {name: codes for name, codes in missing.items() if codes} == {}
    for code in SERVER_ANSWERS:
        assert document["components"]["responses"][HTTPStatus(code).name]["content"]


def test_the_docs_page_names_its_icon(client):
    page = client.get("/api/v1/docs").get_data(as_text=True)
    assert 'rel="icon"' in page
    icon = page.split('rel="icon"')[1].split('href="')[1].split('"')[0]
    with client.get(icon) as response:
        assert (response.status_code, response.mimetype) == (200, "image/png")


@pytest.fixture
def served(app):
    with served_in_a_thread(app) as base:
        yield base


@pytest.mark.slow
def test_the_docs_page_loads_in_a_browser_without_a_console_error(served):
    with browser_page() as (page, problems):
        page.goto(f"{served}/api/v1/docs", wait_until="networkidle")
        page.wait_for_selector("text=Fetch All Tickets", timeout=15_000)
        assert page.title() == "Tickets API"
    assert problems == []
