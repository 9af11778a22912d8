"""The endpoint catalogue: every operation of the API, once. The input, validation,
authentication, tenancy and query-string matrices are generated from it: a new endpoint is one
more entry in ENDPOINTS (a test fails while a route is missing from it)."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pytest

from tickets_service.models import RevokedToken, Ticket, TicketReply

from .client import PASSWORD, SCOPE, Account, scope_of

# are generated from it: a new endpoint is one more entry in ENDPOINTS.


@dataclass(frozen=True)
class World:
    """Who calls, the live ticket a per-ticket path names, and a subscriber a body may link."""

    caller: Account
    ticket_id: int
    subscriber_id: int | None = None
    scope: dict | None = None  # the isp/branch/user the request claims; the caller's by default

    @property
    def claimed(self) -> dict:
        return scope_of(self.caller) if self.scope is None else self.scope


@dataclass(frozen=True)
class Outcome:
    """What an accepted request left: the body's data and the database to read back."""

    world: World
    sent: dict
    data: object
    fetch: Callable
    rows: Callable


@dataclass(frozen=True, eq=False)
class Endpoint:
    """One operation of the API: how a client calls it in a World (path, method, body, query),
    what a success answers and does (`effect`), and the rules its fields and parameters follow.
    Every attribute left at its default simply adds no case to the matrices."""

    name: str
    method: str
    path: str  # "{id}" is a ticket id
    effect: Callable[[Outcome], None]  # asserts what a success did
    body: Callable[[World], dict] | None = None  # a body it accepts
    query: Callable[[World], dict] | None = None  # the query string a client sends
    status: int = 200
    message: str | None = None
    integer_fields: tuple[str, ...] = ()
    string_fields: tuple[str, ...] = ()
    nullable_fields: tuple[str, ...] = ()
    required_fields: tuple[str, ...] = ()
    secret_fields: tuple[str, ...] = ()  # taken as typed: not trimmed, never stored
    codes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)  # body or query code tables
    max_lengths: Mapping[str, int] = field(default_factory=dict)
    # Fields a client may not send: unknown names and columns the server owns.
    refused_fields: Mapping[str, object] = field(default_factory=dict)
    query_integers: tuple[str, ...] = ()  # integer query parameters it validates
    authenticated: bool = True
    admin_only: bool = False
    body_limit: int | None = None  # a route's own body limit, below MAX_CONTENT_LENGTH

    def within_limit(self, data: bytes, limit: int, status: int) -> int:
        """`status`, or 413 when `data` is over this route's body limit (or `limit`)."""
        return 413 if len(data) > min(limit, self.body_limit or limit) else status

    def __str__(self) -> str:
        return self.name

    @property
    def per_ticket(self) -> bool:
        return "{id}" in self.path

    @property
    def scoped(self) -> bool:
        """It takes isp_id / branch_id / user_id, which must agree with the token."""
        return "isp_id" in self.integer_fields + self.query_integers


def assert_stored(row: dict, sent: dict) -> None:
    """Every value sent that the row has a column for is stored as sent."""
    shared = sent.keys() & row.keys()
    assert shared
    assert {name: row[name] for name in shared} == {name: sent[name] for name in shared}


def _listed(o: Outcome) -> None:
    assert [item["id"] for item in o.data] == [o.world.ticket_id]


def _fetched(o: Outcome) -> None:
    assert o.data["id"] == o.world.ticket_id


def _created(o: Outcome) -> None:
    row = o.fetch(Ticket, o.data["id"])
    assert_stored(row, o.sent)
    assert (row["created_by_id"], row["status"], row["deleted_at"]) == (o.world.caller.id, 0, None)


def _changed(o: Outcome) -> None:
    assert_stored(o.fetch(Ticket, o.world.ticket_id), o.sent)


def _deleted(o: Outcome) -> None:
    assert o.fetch(Ticket, o.world.ticket_id)["deleted_at"] is not None


def _replied(o: Outcome) -> None:
    [reply] = o.rows(TicketReply)
    assert_stored(reply, o.sent)
    assert (reply["ticket_id"], reply["user_id"]) == (o.world.ticket_id, o.world.caller.id)


def _logged_in(o: Outcome) -> None:
    assert o.data["access_token"]
    assert o.data["user"]["id"] == o.world.caller.id


def _me(o: Outcome) -> None:
    assert o.data["id"] == o.world.caller.id


def _logged_out(o: Outcome) -> None:
    [revoked] = o.rows(RevokedToken)
    assert revoked["user_id"] == o.world.caller.id


PRIORITIES = (1, 2, 3)
STATUSES = (0, 1, 2, 3)
TICKET_FIELDS = {
    "integer_fields": (*SCOPE, "subscriber_id", "priority"),
    "string_fields": ("title", "description"),
    "nullable_fields": ("subscriber_id",),
    "codes": {"priority": PRIORITIES},
    "max_lengths": {"title": 255, "description": 10_000},
    "query_integers": SCOPE,
}

LIST = Endpoint(
    "list",
    "GET",
    "/api/v1/tickets",
    _listed,
    query=lambda w: w.claimed,
    codes={"status": STATUSES, "priority": PRIORITIES},
    query_integers=(*SCOPE, "status", "priority", "page", "per_page"),
)
FETCH = Endpoint(
    "fetch",
    "GET",
    "/api/v1/tickets/{id}",
    _fetched,
    query=lambda w: w.claimed,
    query_integers=SCOPE,
)
CREATE = Endpoint(
    "create",
    "POST",
    "/api/v1/tickets",
    _created,
    body=lambda w: {
        **w.claimed,
        "subscriber_id": w.subscriber_id,
        "title": "Connection Issue",
        "description": "Cannot connect to internet",
        "priority": 2,
    },
    status=201,
    message="Ticket created successfully",
    required_fields=("title", "description", "priority"),
    refused_fields={
        "id": 999,
        "status": 3,
        "created_by_id": 1,
        "created_by": 1,
        "created_at": "2000-01-01 00:00:00",
        "deleted_at": "2000-01-01 00:00:00",
        "subscriber_name": "Someone",
        "replies": [],
        "__proto__": {"admin": True},
        "": 1,
        "Title": "case variant",
    },
    **TICKET_FIELDS,
)
UPDATE = Endpoint(
    "update",
    "PUT",
    "/api/v1/tickets/{id}",
    _changed,
    body=lambda w: {
        **w.claimed,
        "subscriber_id": w.subscriber_id,
        "title": "Updated Title",
        "description": "Still cannot connect",
        "priority": 3,
    },
    message="Ticket updated successfully",
    refused_fields={
        "id": 999,
        "status": 3,
        "created_by_id": 1,
        "updated_at": "2000-01-01 00:00:00",
        "deleted_at": "2000-01-01 00:00:00",
    },
    **TICKET_FIELDS,
)
DELETE = Endpoint(
    "delete",
    "DELETE",
    "/api/v1/tickets/{id}",
    _deleted,
    query=lambda w: w.claimed,
    message="Ticket deleted successfully",
    query_integers=SCOPE,
    admin_only=True,
)
REPLY = Endpoint(
    "reply",
    "POST",
    "/api/v1/tickets/{id}/reply",
    _replied,
    body=lambda w: {**w.claimed, "message": "We are looking into this issue."},
    status=201,
    message="Reply added successfully",
    integer_fields=SCOPE,
    string_fields=("message",),
    required_fields=("message",),
    max_lengths={"message": 10_000},
    refused_fields={
        "user_name": "Someone else",
        "ticket_id": 1,
        "created_at": "2000-01-01 00:00:00",
    },
    query_integers=SCOPE,
)
STATUS = Endpoint(
    "status",
    "PUT",
    "/api/v1/tickets/{id}/status",
    _changed,
    body=lambda w: {**w.claimed, "status": 2},
    message="Ticket status updated successfully",
    integer_fields=(*SCOPE, "status"),
    required_fields=("status",),
    codes={"status": STATUSES},
    refused_fields={"priority": 3, "title": "x", "deleted_at": None},
    query_integers=SCOPE,
)
LOGIN = Endpoint(
    "login",
    "POST",
    "/api/v1/auth/login",
    _logged_in,
    body=lambda w: {"email": w.caller.email, "password": PASSWORD},
    string_fields=("email", "password"),
    required_fields=("email", "password"),
    secret_fields=("password",),
    max_lengths={"email": 255, "password": 1024},
    refused_fields={"role": "admin", "isp_id": 2, "remember": True},
    authenticated=False,
    body_limit=4096,
)
ME = Endpoint("me", "GET", "/api/v1/auth/me", _me)
LOGOUT = Endpoint(
    "logout", "POST", "/api/v1/auth/logout", _logged_out, message="Logged out successfully"
)

ENDPOINTS = (LIST, FETCH, CREATE, UPDATE, DELETE, REPLY, STATUS, LOGIN, ME, LOGOUT)
WITH_BODY = tuple(endpoint for endpoint in ENDPOINTS if endpoint.body)
PER_TICKET = tuple(endpoint for endpoint in ENDPOINTS if endpoint.per_ticket)
SCOPED = tuple(endpoint for endpoint in ENDPOINTS if endpoint.scoped)


def cases(table: dict) -> list:
    """pytest.param rows from {label: value}, with ids from the labels."""
    return [pytest.param(value, id=label) for label, value in table.items()]


def matrix(attribute: str, values, endpoints=WITH_BODY, skip=lambda *_: False) -> list:
    """pytest.param(endpoint, name, value) rows: every endpoint, every name in its `attribute`
    (names, or a mapping keyed by them), every value of the {label: value} table `values` (or
    of values(endpoint, name)), except where skip(endpoint, name, value)."""
    return [
        pytest.param(endpoint, name, value, id=f"{endpoint}-{name}-{label}")
        for endpoint in endpoints
        for name in getattr(endpoint, attribute)
        for label, value in (values(endpoint, name) if callable(values) else values).items()
        if not skip(endpoint, name, value)
    ]
