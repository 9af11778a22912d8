"""Refusals cost little and say little: login reads at most 4 KiB of body, a 422 names at most
MAX_FIELD_ERRORS fields, and a body its client cut off is the client's 400, never a 500.

The probe's finding: a 1 MiB login body of about 96,000 unknown keys cost 0.6-2.9 s of a
worker and answered 2.9 MB, and no login limit counted it; an aborted chunked body logged a 500.
"""

import io
import json
import logging

import pytest
from flask import Response
from support.client import PASSWORD, assert_error, assert_success
from support.database import database_state
from support.urls import LOGIN, TICKETS
from werkzeug.test import EnvironBuilder

from tickets_service.auth import LOGIN_BODY_LIMIT
from tickets_service.errors import MAX_FIELD_ERRORS
from tickets_service.models import LoginAttempt


def unknown_keys(count: int, **known) -> bytes:
    names = {f"{n:x}": 0 for n in range(count)}
    return json.dumps({**known, **names}, separators=(",", ":")).encode()


def test_a_login_body_over_4_kib_is_413_unread_and_uncounted(client, admin, rows):
    body = unknown_keys(96_000, email=admin.email, password=PASSWORD)
    response = client.post(LOGIN, data=body, content_type="application/json")

    assert_error(response, 413)
    assert len(response.get_data()) < 200
    assert rows(LoginAttempt) == []


def test_a_login_body_of_4_kib_is_read(client, admin):
    body = json.dumps({"email": admin.email, "password": PASSWORD}).encode()
    body = body[:-1] + b" " * (LOGIN_BODY_LIMIT - len(body)) + b"}"
    assert len(body) == LOGIN_BODY_LIMIT
    assert_success(client.post(LOGIN, data=body, content_type="application/json"), 200)


def test_a_login_body_streamed_without_length_is_held_to_4_kib(client, admin):
    body = unknown_keys(1000, email=admin.email, password=PASSWORD)
    assert len(body) > LOGIN_BODY_LIMIT
    response = client.post(
        LOGIN,
        input_stream=io.BytesIO(body),
        headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert_error(response, 413)


def test_a_body_of_a_hundred_thousand_unknown_names_gets_a_short_422(app, client, admin):
    body = unknown_keys(96_000, title="Slow", description="Evenings", priority=1)
    assert len(body) < 1024 * 1024
    before = database_state(app)

    response = client.post(
        TICKETS, data=body, content_type="application/json", headers=admin.headers
    )

    answer = assert_error(response, 422)
    assert len(answer["errors"]) == MAX_FIELD_ERRORS
    assert all(problems == ["Unknown field."] for problems in answer["errors"].values())
    assert len(response.get_data()) < 4096
    assert database_state(app) == before


@pytest.mark.parametrize("extra", [MAX_FIELD_ERRORS - 3, MAX_FIELD_ERRORS + 5])
def test_a_422_names_at_most_a_bounded_number_of_fields(client, admin, extra):
    """Below the early refusal, marshmallow's own errors are cut to the same bound."""
    body = unknown_keys(extra, title="", description="", priority="high")
    response = client.post(
        TICKETS, data=body, content_type="application/json", headers=admin.headers
    )

    answer = assert_error(response, 422)
    assert len(answer["errors"]) == min(extra + 3, MAX_FIELD_ERRORS)
    if extra + 3 > MAX_FIELD_ERRORS:
        assert f"the first {MAX_FIELD_ERRORS} shown" in answer["message"]


class CutOff:
    """A request body whose client went away part way: asked for more than arrived, the
    server's reader raises, as gunicorn's does (NoMoreData, an IOError) for an aborted body."""

    def __init__(self, data: bytes):
        self.data = data

    def read(self, size: int = -1) -> bytes:
        if size < 0 or size > len(self.data):
            raise OSError(f"No more data after: {self.data[-10:]!r}")
        taken, self.data = self.data[:size], self.data[size:]
        return taken

    def readline(self, size: int = -1) -> bytes:
        return self.read(size)


def test_a_chunked_body_its_client_cut_off_is_a_400_logged_as_the_clients(app, admin, caplog):
    """As a WSGI server that streams bodies hands it over (gunicorn's sync and threaded
    workers); under this service's buffering worker such a body never reaches the app at all
    (test_slow_clients)."""
    before = database_state(app)
    headers = {**admin.headers, "Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    environ = EnvironBuilder(path=TICKETS, method="POST", headers=headers).get_environ()
    environ["wsgi.input"] = CutOff(b'{"title": "Cut')
    environ["wsgi.input_terminated"] = True
    environ.pop("CONTENT_LENGTH", None)

    with caplog.at_level(logging.INFO):
        response = Response.from_app(app, environ)

    body = assert_error(response, 400)
    assert body["message"] == "The request body ended before it was complete."
    assert database_state(app) == before
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
