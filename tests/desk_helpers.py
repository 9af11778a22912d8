"""What the desk tests share: the new endpoints' URLs, one way to call them, and read-backs of
every table the desk writes (history and kept counts included), so a test can prove what a
request changed, or that it changed nothing."""

import os
import re
from datetime import UTC, datetime

from sqlalchemy import select, update

from tickets_service.extensions import db
from tickets_service.models import Subscriber, Ticket, TicketCount, TicketHistory, TicketReply, User
from tickets_service.models import utcnow as now  # noqa: F401 (re-exported for the tests)

from conftest import assert_success, scope_of

TICKETS, STATS = "/api/v1/tickets", "/api/v1/tickets/stats"
SUBSCRIBERS, USERS = "/api/v1/subscribers", "/api/v1/users"
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
ON_SQLITE = not os.environ.get("TEST_DATABASE_URL", "").startswith("postgres")
# What the desk adds to a ticket, in this order, after the spec's fields.
DESK_FIELDS = ["assignee_id", "assignee_name", "due_at", "first_response_at", "resolved_at"]
DESK_FIELDS += ["closed_at"]


def ticket_url(ticket_id: int, suffix: str = "") -> str:
    return f"{TICKETS}/{ticket_id}{suffix}"


def call(client, account, method: str, url: str, body=None, query=None):
    """One request as `account` (a JSON body only when given)."""
    extra = {} if body is None else {"json": body}
    return client.open(url, method=method, query_string=query, headers=account.headers, **extra)


def get(client, account, url: str, **query):
    return call(client, account, "GET", url, query=query)


def list_tickets(client, account, **params):
    """GET the ticket list in the caller's own scope, plus filters."""
    return get(client, account, TICKETS, **{**scope_of(account), **params})


def ids(body: dict) -> list[int]:
    return [item["id"] for item in body["data"]]


def create_ticket(client, account, **fields) -> int:
    """A ticket created through the API (so its history starts with `created`)."""
    body = {"title": "Slow", "description": "Evenings", "priority": 1, **fields}
    response = call(client, account, "POST", TICKETS, {**scope_of(account), **body})
    return assert_success(response, 201, "Ticket created successfully")["data"]["id"]


def reply(client, account, ticket_id: int, message="We are on it.", **extra):
    body = {**scope_of(account), "message": message, **extra}
    return call(client, account, "POST", ticket_url(ticket_id, "/reply"), body)


def set_status(client, account, ticket_id: int, status: int):
    body = {**scope_of(account), "status": status}
    return call(client, account, "PUT", ticket_url(ticket_id, "/status"), body)


def as_utc(value: datetime) -> datetime:
    """A database timestamp as aware UTC (SQLite hands back naive UTC values)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def stamp(value: datetime) -> str:
    """A datetime as the API writes it."""
    return as_utc(value).isoformat(" ", "seconds")[:19]  # strftime leaves year 1 unpadded


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def desk_state(rows) -> dict:
    """Every table the API writes: equal before and after a request, or it changed something."""
    models = (User, Subscriber, Ticket, TicketReply, TicketHistory, TicketCount)
    return {model.__tablename__: rows(model) for model in models}


def history_in_db(rows, ticket_id: int) -> list[tuple]:
    """A ticket's history rows as (action, field, old, new, user_id), oldest first."""
    return [
        (row["action"], row["field"], row["old"], row["new"], row["user_id"])
        for row in rows(TicketHistory)
        if row["ticket_id"] == ticket_id
    ]


def set_columns(app, model, object_id: int, **values) -> None:
    """Write columns directly (e.g. a created_at in the past); updated_at keeps its value
    unless named."""
    with app.app_context():
        values.setdefault("updated_at", db.session.get(model, object_id).updated_at)
        db.session.execute(update(model).where(model.id == object_id).values(**values))
        db.session.commit()
        db.session.remove()


def add_replies(app, ticket_id: int, author_ids: list[int], internal: bool = False) -> None:
    """One reply per author through the model's own action (history and counts kept), in one
    transaction: fast enough for hundreds."""
    with app.app_context():
        ticket = db.session.get(Ticket, ticket_id)
        authors = {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(author_ids)))}
        for n, author_id in enumerate(author_ids):
            ticket.add_reply(f"Reply number {n}", internal, authors[author_id])
        db.session.commit()
        db.session.remove()
