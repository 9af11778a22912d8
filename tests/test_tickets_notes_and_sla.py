"""Internal notes beside public replies, and the SLA clock:
first_response_at (the first public reply), resolved_at / closed_at (the last move into 2 / 3,
cleared on reopening), an optional due_at, and the overdue filter."""

from datetime import timedelta

import pytest
from support.client import assert_success, call, get, ids, list_tickets, reply, set_status
from support.database import as_utc, now, stamp
from support.urls import TICKETS, ticket_url

from tickets_service.models import Ticket, TicketReply


def shown(client, account, ticket_id: int) -> dict:
    return assert_success(get(client, account, ticket_url(ticket_id)), 200)["data"]


# --- Internal notes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "internal"), [({}, False), ({"internal": False}, False), ({"internal": True}, True)]
)
def test_a_reply_stores_and_shows_its_internal_flag(
    client, staff, make_ticket, rows, extra, internal
):
    ticket_id = make_ticket(staff)

    assert_success(reply(client, staff, ticket_id, **extra), 201, "Reply added successfully")

    [stored] = rows(TicketReply)
    [seen] = shown(client, staff, ticket_id)["replies"]
    assert (stored["internal"], seen["id"], seen["internal"]) == (internal, stored["id"], internal)


@pytest.mark.parametrize("value", ["true", "false", 1, 0, None, [], {}, "yes"])
def test_internal_that_is_not_a_json_boolean_is_422(
    client, staff, make_ticket, assert_refused, value
):
    ticket_id = make_ticket(staff)
    assert_refused(lambda: reply(client, staff, ticket_id, internal=value), 422, "internal")


# --- first_response_at ------------------------------------------------------------------------


def test_an_internal_note_is_never_a_first_response(client, staff, make_ticket, fetch):
    ticket_id = make_ticket(staff)

    assert_success(reply(client, staff, ticket_id, internal=True), 201)

    assert fetch(Ticket, ticket_id)["first_response_at"] is None
    assert shown(client, staff, ticket_id)["first_response_at"] is None


def test_first_response_at_is_the_first_public_reply_after_any_notes(
    client, staff, make_ticket, fetch, rows
):
    ticket_id = make_ticket(staff)
    for message, internal in (("note", True), ("first", False), ("second", False)):
        assert_success(reply(client, staff, ticket_id, message, internal=internal), 201)

    first = next(r for r in rows(TicketReply) if r["message"] == "first")
    stored = fetch(Ticket, ticket_id)["first_response_at"]
    assert as_utc(stored) == as_utc(first["created_at"])
    assert shown(client, staff, ticket_id)["first_response_at"] == stamp(stored)


# --- resolved_at and closed_at ----------------------------------------------------------------

# Moves from Open, and whether (resolved_at, closed_at) are set afterwards.
STATUS_MOVES = [
    ([], (False, False)),
    ([1], (False, False)),
    ([2], (True, False)),
    ([3], (False, True)),
    ([2, 3], (True, True)),
    ([2, 0], (False, False)),
    ([3, 1], (False, False)),
    ([2, 3, 1], (False, False)),
    ([2, 1, 2], (True, False)),
]


@pytest.mark.parametrize(("moves", "expected"), STATUS_MOVES)
def test_resolved_and_closed_at_follow_the_status(
    client, staff, make_ticket, fetch, moves, expected
):
    ticket_id = make_ticket(staff)

    for status in moves:
        assert_success(set_status(client, staff, ticket_id, status), 200)

    row, seen = fetch(Ticket, ticket_id), shown(client, staff, ticket_id)
    assert (row["resolved_at"] is not None, row["closed_at"] is not None) == expected
    for name in ("resolved_at", "closed_at"):
        assert seen[name] == (row[name] and stamp(row[name]))


@pytest.mark.parametrize(("status", "column"), [(2, "resolved_at"), (3, "closed_at")])
def test_the_sla_time_is_the_last_move_into_the_status(
    client, staff, make_ticket, fetch, status, column
):
    ticket_id = make_ticket(staff)
    assert_success(set_status(client, staff, ticket_id, status), 200)
    first = fetch(Ticket, ticket_id)[column]
    assert_success(set_status(client, staff, ticket_id, 1), 200)

    assert_success(set_status(client, staff, ticket_id, status), 200)

    assert as_utc(fetch(Ticket, ticket_id)[column]) > as_utc(first)


def test_setting_the_same_status_again_keeps_resolved_at(client, staff, make_ticket, fetch):
    ticket_id = make_ticket(staff)
    assert_success(set_status(client, staff, ticket_id, 2), 200)
    before = fetch(Ticket, ticket_id)

    assert_success(set_status(client, staff, ticket_id, 2), 200)

    assert fetch(Ticket, ticket_id) == before


# --- due_at -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "due_at", ["2031-05-06 07:08:09", "9999-12-31 23:59:59", "0001-01-01 00:00:00"]
)
def test_create_stores_due_at_and_shows_it_as_given(client, staff, fetch, due_at):
    body = {"title": "T", "description": "D", "priority": 2, "due_at": due_at}

    ticket_id = assert_success(call(client, staff, "POST", TICKETS, body), 201)["data"]["id"]

    assert stamp(fetch(Ticket, ticket_id)["due_at"]) == due_at
    assert shown(client, staff, ticket_id)["due_at"] == due_at


@pytest.mark.parametrize("due_at", ["2031-05-06 07:08:09", None])
def test_update_sets_or_clears_due_at(client, staff, make_ticket, fetch, due_at):
    ticket_id = make_ticket(staff, due_at=now() + timedelta(days=3))

    assert_success(call(client, staff, "PUT", ticket_url(ticket_id), {"due_at": due_at}), 200)

    stored = fetch(Ticket, ticket_id)["due_at"]
    assert (stored and stamp(stored)) == due_at
    assert assert_success(list_tickets(client, staff), 200)["data"][0]["due_at"] == due_at


BAD_DUE_AT = [
    *("2024-01-01T10:00:00", "2024-01-01", "2024-01-01 10:00", "2024-02-30 10:00:00"),
    *("2024-01-01 24:00:00", "2024-01-01 10:00:00Z", "2024-01-01 10:00:00+02:00"),
    *(" 2024-01-01 10:00:00", "", 1704103200, True, ["2024-01-01 10:00:00"]),
    "2024-1-1 1:0:0",
]


@pytest.mark.parametrize("method", ["POST", "PUT"])
@pytest.mark.parametrize("due_at", BAD_DUE_AT)
def test_due_at_not_in_the_api_format_is_422(
    client, staff, make_ticket, assert_refused, method, due_at
):
    ticket_id = make_ticket(staff)
    url = TICKETS if method == "POST" else ticket_url(ticket_id)
    body = {"title": "T", "description": "D", "priority": 2} if method == "POST" else {}
    body["due_at"] = due_at
    assert_refused(lambda: call(client, staff, method, url, body), 422, "due_at")


# --- overdue ----------------------------------------------------------------------------------


@pytest.fixture
def due_tickets(staff, make_ticket) -> dict:
    """One ticket of each kind, by name."""
    past, future = now() - timedelta(hours=1), now() + timedelta(days=1)
    return {
        "open, past due": make_ticket(staff, due_at=past, status=0),
        "in progress, past due": make_ticket(staff, due_at=past, status=1),
        "resolved, past due": make_ticket(staff, due_at=past, status=2),
        "closed, past due": make_ticket(staff, due_at=past, status=3),
        "open, due later": make_ticket(staff, due_at=future, status=0),
        "open, no due time": make_ticket(staff, status=0),
    }


OVERDUE = ["open, past due", "in progress, past due"]


@pytest.mark.parametrize("value", ["true", "false"])
def test_overdue_splits_open_tickets_past_their_due_time_from_the_rest(
    client, staff, due_tickets, value
):
    body = assert_success(list_tickets(client, staff, overdue=value), 200)

    wanted = [t for name, t in due_tickets.items() if (name in OVERDUE) == (value == "true")]
    assert (sorted(ids(body)), body["meta"]["total"]) == (sorted(wanted), len(wanted))
