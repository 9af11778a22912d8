"""Calling the API as a client does: one way to send a request as an account, the
envelope assertions, and requests fired at the same instant from threads."""

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from tickets_service.tokens import Caller

from .urls import TICKETS, ticket_url

T = TypeVar("T")

PASSWORD = "correct horse battery staple"
JWT_SECRET = "test-secret-that-is-long-enough-for-hs256!"
SCOPE = ("isp_id", "branch_id", "user_id")

# What the desk adds to a ticket, in this order, after the spec's fields.
DESK_FIELDS = ["assignee_id", "assignee_name", "due_at", "first_response_at", "resolved_at"]
DESK_FIELDS += ["closed_at"]


@dataclass(frozen=True)
class Account(Caller):
    """A user the tests act as: its columns as the API sees them, and a valid bearer token."""

    headers: dict
    token: str


@dataclass(frozen=True)
class KeyHolder:
    """A program calling with an API key: the key as its creation answered, and the header
    that presents it (call() takes it where it takes an Account)."""

    id: int
    name: str
    key: str
    headers: dict


def scope_of(account: "Account | KeyHolder") -> dict:
    """The isp_id / branch_id / user_id a client sends along with its requests (a program
    with an API key sends none: they are optional)."""
    if isinstance(account, KeyHolder):
        return {}
    return {"isp_id": account.isp_id, "branch_id": account.branch_id, "user_id": account.id}


def call(client, account, method: str, url: str, body=None, query=None, *, headers=None):
    """One request as `account`, with a JSON body only when given, a query string and any
    extra headers."""
    extra = {} if body is None else {"json": body}
    return client.open(
        url,
        method=method,
        query_string=query,
        headers={**account.headers, **(headers or {})},
        **extra,
    )


def get(client, account, url: str, **query):
    return call(client, account, "GET", url, query=query)


def list_tickets(client, account, **params):
    """GET the ticket list in the caller's own scope, plus filters."""
    return get(client, account, TICKETS, **{**scope_of(account), **params})


def ids(body: dict) -> list[int]:
    return [item["id"] for item in body["data"]]


def create_ticket(client, account, headers=None, **fields) -> int:
    """A ticket created through the API (its history starts with `created`)."""
    body = {**scope_of(account), "title": "Slow", "description": "Evenings", "priority": 1}
    response = call(client, account, "POST", TICKETS, {**body, **fields}, headers=headers)
    return assert_success(response, 201, "Ticket created successfully")["data"]["id"]


def reply(client, account, ticket_id: int, message="We are on it.", **extra):
    body = {**scope_of(account), "message": message, **extra}
    return call(client, account, "POST", ticket_url(ticket_id, "/reply"), body)


def set_status(client, account, ticket_id: int, status: int):
    body = {**scope_of(account), "status": status}
    return call(client, account, "PUT", ticket_url(ticket_id, "/status"), body)


def encode(body: dict) -> bytes:
    """The body as UTF-8 JSON text, as most clients send it."""
    return json.dumps(body, ensure_ascii=False).encode()


def in_parallel(calls: list[Callable[[], T]], timeout: float = 60) -> list[T]:
    """Run each call in its own thread, all released at once; their results, in order.

    Each thread should make its own test client (one per request is cheapest): the Flask test
    client pushes a fresh app context, hence a fresh database session, for every request.
    """
    barrier = threading.Barrier(len(calls))

    def started_together(function: Callable[[], T]) -> T:
        barrier.wait(timeout=timeout)
        return function()

    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(started_together, function) for function in calls]
        return [future.result(timeout=timeout) for future in futures]


# --- The envelope ---------------------------------------------------------------------------

ENVELOPE_KEYS = {"success", "message", "data", "meta"}
ERROR_KEYS = {"success", "message", "errors"}
_LEAKS = ("traceback", "sqlalchemy", "psycopg", "sqlite", "<html")


def assert_success(response, status: int, message: str | None = None) -> dict:
    """The success envelope with this status (and message); returns the body."""
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["success"] is True
    assert set(body) <= ENVELOPE_KEYS
    if message is not None:
        assert body["message"] == message
    return body


def assert_error(response, status: int, field: str | None = None) -> dict:
    """The error envelope with this status: a message, per-field string lists (required on
    422, naming `field` when given), and no trace, SQL or HTML; returns the body."""
    text = response.get_data(as_text=True)
    assert response.status_code == status, f"{response.status_code}: {text[:300]}"
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) <= ERROR_KEYS
    assert body["success"] is False
    assert isinstance(body["message"], str)
    assert body["message"].strip()
    errors = body.get("errors", {})
    assert isinstance(errors, dict)
    for name, messages in errors.items():
        assert isinstance(name, str)
        assert isinstance(messages, list)
        assert messages
        assert all(isinstance(message, str) for message in messages)
    if status == 422:
        assert errors
    if field is not None:
        assert field in errors, errors
    for leak in _LEAKS:
        assert leak not in text.lower()
    return body
