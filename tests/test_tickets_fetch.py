"""Fetch Ticket, GET /api/v1/tickets/{id}: the ticket with its replies oldest first, in the spec's
fields, order and JSON types; and timestamps, everywhere, as "YYYY-MM-DD HH:MM:SS" in UTC."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from support.catalogue import CREATE, FETCH, LIST, World
from support.client import assert_success
from support.database import as_utc

from tickets_service.models import Ticket, TicketReply

TICKET_FIELDS = ["id", "title", "description", "subscriber_id", "subscriber_name", "priority"]
TICKET_FIELDS += ["status", "replies", "created_at"]
REPLY_FIELDS = ["id", "message", "user_name", "created_at"]
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")


def fetch_ticket(send, account, ticket_id: int) -> dict:
    return assert_success(send(FETCH, World(account, ticket_id)), 200)["data"]


@pytest.mark.parametrize("linked", [True, False], ids=["with-subscriber", "without-subscriber"])
def test_the_ticket_comes_in_spec_order_and_json_types(
    send, staff, make_subscriber, make_ticket, fetch, linked
):
    subscriber_id = make_subscriber(name="John Doe") if linked else None
    ticket_id = make_ticket(staff, subscriber_id=subscriber_id, priority=3, status=2)

    data, row = fetch_ticket(send, staff, ticket_id), fetch(Ticket, ticket_id)

    assert list(data)[: len(TICKET_FIELDS)] == TICKET_FIELDS
    assert (type(data["id"]), type(data["priority"]), type(data["status"])) == (int, int, int)
    assert data["id"] == ticket_id
    assert data["title"] == row["title"]
    assert data["description"] == row["description"] == "Cannot connect to internet"
    assert data["subscriber_id"] == subscriber_id
    assert data["subscriber_name"] == ("John Doe" if linked else None)
    assert (data["priority"], data["status"]) == (row["priority"], row["status"]) == (3, 2)
    assert data["replies"] == []


def test_a_reply_comes_in_spec_order_and_names_its_author(
    send, admin, staff, make_ticket, make_reply, fetch
):
    ticket_id = make_ticket(staff)
    reply_id = make_reply(ticket_id, admin, message="We are looking into this.")

    [reply] = fetch_ticket(send, staff, ticket_id)["replies"]

    assert list(reply)[: len(REPLY_FIELDS)] == REPLY_FIELDS
    assert type(reply["id"]) is int
    assert reply["id"] == reply_id
    assert reply["message"] == fetch(TicketReply, reply_id)["message"]
    assert reply["user_name"] == admin.name == "Admin"


def test_replies_come_oldest_first(send, staff, make_ticket, make_reply):
    """Inserted out of order, so an id order would not pass."""
    ticket_id = make_ticket(staff, age=timedelta(days=1))
    ages_in_minutes = [30, 90, 60, 10]
    ids = [make_reply(ticket_id, staff, age=timedelta(minutes=m)) for m in ages_in_minutes]

    replies = fetch_ticket(send, staff, ticket_id)["replies"]

    pairs = sorted(zip(ages_in_minutes, ids, strict=True), reverse=True)
    assert [reply["id"] for reply in replies] == [reply_id for _, reply_id in pairs]


@pytest.mark.parametrize("shown", ["list item", "ticket", "reply"])
def test_timestamps_are_utc_in_the_spec_format(send, staff, make_ticket, make_reply, fetch, shown):
    ticket_id = make_ticket(staff, age=timedelta(hours=5))
    reply_id = make_reply(ticket_id, staff, age=timedelta(hours=3))
    world = World(staff, ticket_id)

    if shown == "list item":
        value, stored = send(LIST, world).get_json()["data"][0], fetch(Ticket, ticket_id)
    elif shown == "ticket":
        value, stored = fetch_ticket(send, staff, ticket_id), fetch(Ticket, ticket_id)
    else:
        value = fetch_ticket(send, staff, ticket_id)["replies"][0]
        stored = fetch(TicketReply, reply_id)

    assert TIMESTAMP.fullmatch(value["created_at"])
    assert value["created_at"] == as_utc(stored["created_at"]).strftime("%Y-%m-%d %H:%M:%S")


def test_timestamps_are_utc_not_local_time(send, world):
    """A ticket created now reads back as the current UTC time."""
    ticket_id = assert_success(send(CREATE, world), 201)["data"]["id"]

    shown = fetch_ticket(send, world.caller, ticket_id)["created_at"]

    written = datetime.strptime(shown, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    assert abs(datetime.now(UTC) - written) < timedelta(minutes=1)
