"""What the desk tests share: the new endpoints' URLs, one way to call them, and read-backs of
every table the desk writes (history and the kept counts included), so a test can prove what a
request changed, or that it changed nothing."""

import os
import re
from datetime import UTC, datetime

from sqlalchemy import update

from tickets_service.extensions import db
from tickets_service.models import (
    Subscriber,
    Ticket,
    TicketCount,
    TicketHistory,
    TicketReply,
    User,
    utcnow,
)

from conftest import scope_of

TICKETS = "/api/v1/tickets"
SUBSCRIBERS = "/api/v1/subscribers"
USERS = "/api/v1/users"
STATS = f"{TICKETS}/stats"
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
ON_SQLITE = not os.environ.get("TEST_DATABASE_URL", "").startswith("postgres")

# What the desk adds to a ticket, in this order, after the spec's fields.
DESK_FIELDS = [
    "assignee_id",
    "assignee_name",
    "due_at",
    "first_response_at",
    "resolved_at",
    "closed_at",
]
USER_KEYS = {"id", "name", "email", "role", "isp_id", "branch_id", "is_active"}


def ticket_url(ticket_id: int, suffix: str = "") -> str:
    return f"{TICKETS}/{ticket_id}{suffix}"


def call(client, account, method: str, url: str, body=None, query=None):
    """One request as `account` (a JSON body only when given)."""
    extra = {} if body is None else {"json": body}
    return client.open(url, method=method, query_string=query, headers=account.headers, **extra)


def list_tickets(client, account, **params):
    """GET the ticket list in the caller's own scope, plus filters."""
    return client.get(
        TICKETS, query_string={**scope_of(account), **params}, headers=account.headers
    )


def ids(body: dict) -> list[int]:
    return [item["id"] for item in body["data"]]


def stamp(value: datetime) -> str:
    """A datetime as the API writes it (UTC)."""
    return as_utc(value).strftime("%Y-%m-%d %H:%M:%S")


def as_utc(value: datetime) -> datetime:
    """A database timestamp as aware UTC (SQLite hands back naive UTC values)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def desk_state(rows) -> dict:
    """Every table the API writes, history and counts included: equal before and after a
    refused request, or it changed something."""
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
    """Write columns directly (e.g. a created_at in the past); values not named keep theirs,
    updated_at included."""
    with app.app_context():
        row = db.session.get(model, object_id)
        if "updated_at" not in values and hasattr(row, "updated_at"):
            values["updated_at"] = row.updated_at
        db.session.execute(update(model).where(model.id == object_id).values(**values))
        db.session.commit()
        db.session.remove()


def add_replies(app, ticket_id: int, author_ids: list[int], internal: bool = False) -> None:
    """One reply per author, through the model's own action (history and counts kept), in one
    transaction: fast enough for hundreds."""
    with app.app_context():
        ticket = db.session.get(Ticket, ticket_id)
        authors = {user.id: user for user in db.session.query(User).filter(User.id.in_(author_ids))}
        for n, author_id in enumerate(author_ids):
            ticket.add_reply(f"Reply number {n}", internal, authors[author_id])
        db.session.commit()
        db.session.remove()


def now() -> datetime:
    return utcnow()
