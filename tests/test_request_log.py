"""Issue 3, point 6: one JSON line per request, request ids, nothing secret in the logs."""

import json
import logging
import re

import pytest

from conftest import PASSWORD


@pytest.fixture
def log_lines(caplog):
    """The package's log records, rendered exactly as they reach stdout."""
    caplog.set_level(logging.INFO, logger="tickets_service")
    (handler,) = logging.getLogger("tickets_service").handlers
    formatter = handler.formatter

    def lines():
        return [
            formatter.format(record)
            for record in caplog.records
            if record.name.startswith("tickets_service")
        ]

    return lines


def request_entries(lines):
    entries = [json.loads(line) for line in lines]
    return [entry for entry in entries if entry["logger"] == "tickets_service.request"]


def test_one_json_line_per_request_with_its_fields(client, admin, log_lines):
    client.get("/api/v1/tickets/1", headers=admin.headers)
    client.get("/healthz")
    first, second = request_entries(log_lines())
    assert first["method"] == "GET"
    assert first["path"] == "/api/v1/tickets/1"
    assert first["status"] == 404
    assert first["user_id"] == admin.id
    assert isinstance(first["duration_ms"], float | int)
    assert re.fullmatch(r"[0-9a-f]{32}", first["request_id"])
    assert second["path"] == "/healthz"
    assert second["user_id"] is None


def test_request_id_from_the_client_is_logged_and_echoed(client, log_lines):
    response = client.get("/healthz", headers={"X-Request-ID": "panel-42.retry-1"})
    assert response.headers["X-Request-ID"] == "panel-42.retry-1"
    assert request_entries(log_lines())[0]["request_id"] == "panel-42.retry-1"


@pytest.mark.parametrize("given", ["", "has space", "x" * 129, 'quote"d', "<script>"])
def test_unsafe_request_id_is_replaced_by_a_generated_one(client, given):
    response = client.get("/healthz", headers={"X-Request-ID": given})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])


def test_request_id_is_echoed_on_errors(client):
    response = client.get("/no/such/route", headers={"X-Request-ID": "abc"})
    assert response.status_code == 404
    assert response.headers["X-Request-ID"] == "abc"


def test_no_token_password_or_hash_reaches_the_log(client, app, admin, log_lines):
    login = client.post("/api/v1/auth/login", json={"email": admin.email, "password": PASSWORD})
    token = login.json["data"]["access_token"]
    client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    client.post("/api/v1/auth/login", json={"email": admin.email, "password": "wrong-" + PASSWORD})
    client.get("/api/v1/tickets?isp_id=1&branch_id=1&user_id=1", headers=admin.headers)
    text = "\n".join(log_lines())
    assert len(request_entries(log_lines())) == 4
    for secret in (token, admin.token, PASSWORD, "scrypt:", "Bearer"):
        assert secret not in text
