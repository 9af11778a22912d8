"""Replies at scale (Fetch shows the first 100 and the total, GET .../replies pages through all;
a deleted ticket's replies are 404 in test_tickets_delete), restoring a deleted ticket (staff's
403 in test_tenancy), and a branch's stats."""

from datetime import timedelta

import pytest
from support.client import assert_error, assert_success, call, get, ids, list_tickets, scope_of
from support.database import add_replies, as_utc, now
from support.urls import STATS, TICKETS, ticket_url

from tickets_service.models import Ticket, TicketReply

REPLY_KEYS = ["id", "message", "user_name", "created_at", "user_id", "internal", "key_id"]
REPLY_KEYS += ["author", "attachments"]


# --- Replies at scale -------------------------------------------------------------------------


@pytest.fixture
def busy_ticket(app, staff, admin, make_ticket) -> int:
    """A ticket with 150 replies by two authors, the middle 50 of them notes."""
    ticket_id = make_ticket(staff)
    for n in range(3):
        add_replies(app, ticket_id, [staff.id, admin.id] * 25, internal=n == 1)
    return ticket_id


def reply_ids_in_db(rows, ticket_id: int) -> list[int]:
    replies = [r for r in rows(TicketReply) if r["ticket_id"] == ticket_id]
    return [r["id"] for r in sorted(replies, key=lambda r: (as_utc(r["created_at"]), r["id"]))]


def test_fetch_shows_the_first_100_replies_and_the_total(client, staff, busy_ticket, rows):
    ticket = assert_success(get(client, staff, ticket_url(busy_ticket)), 200)["data"]

    assert [r["id"] for r in ticket["replies"]] == reply_ids_in_db(rows, busy_ticket)[:100]
    assert (ticket["replies_total"], list(ticket)[-10:-8]) == (
        150,
        ["replies_total", "created_by_key_id"],
    )


def test_replies_pages_through_all_replies_oldest_first(client, staff, busy_ticket, rows):
    url = ticket_url(busy_ticket, "/replies")

    pages = [assert_success(get(client, staff, url, page=p, per_page=40), 200) for p in range(1, 6)]

    assert [len(p["data"]) for p in pages] == [40, 40, 40, 30, 0]
    assert [r["id"] for p in pages for r in p["data"]] == reply_ids_in_db(rows, busy_ticket)
    assert [p["meta"] for p in pages] == [
        {"page": p, "per_page": 40, "total": 150, "pages": 4} for p in range(1, 6)
    ]


def test_replies_shows_each_reply_with_its_author_and_flag(client, staff, make_ticket, app):
    ticket_id = make_ticket(staff)
    add_replies(app, ticket_id, [staff.id])
    add_replies(app, ticket_id, [staff.id], internal=True)

    body = assert_success(get(client, staff, ticket_url(ticket_id, "/replies")), 200)

    assert [list(r) for r in body["data"]] == [REPLY_KEYS] * 2
    assert [(r["user_id"], r["user_name"], r["internal"]) for r in body["data"]] == [
        (staff.id, "Staff One", False),
        (staff.id, "Staff One", True),
    ]
    assert body["meta"] == {"page": 1, "per_page": 50, "total": 2, "pages": 1}


@pytest.mark.parametrize(
    ("name", "value"), [("page", "0"), ("per_page", "201"), ("page", "1.5"), ("internal", "true")]
)
def test_bad_replies_query_is_422_on_that_parameter(client, staff, make_ticket, name, value):
    ticket_id = make_ticket(staff)

    assert_error(get(client, staff, ticket_url(ticket_id, "/replies"), **{name: value}), 422, name)


# --- Restore ----------------------------------------------------------------------------------


def restore(client, account, ticket_id: int, **query):
    return call(client, account, "POST", ticket_url(ticket_id, "/restore"), query=query)


def test_an_admin_restores_a_deleted_ticket_as_it_was(
    client, admin, staff, make_ticket, fetch, app
):
    ticket_id = make_ticket(staff, assignee_id=staff.id, status=1, priority=3)
    add_replies(app, ticket_id, [staff.id])
    assert_success(call(client, admin, "DELETE", ticket_url(ticket_id)), 200)
    deleted = fetch(Ticket, ticket_id)

    response = restore(client, admin, ticket_id, **scope_of(admin))

    assert_success(response, 200, "Ticket restored successfully")
    restored = {"deleted_at": None, "updated_at": 0, "version": deleted["version"] + 1}
    assert fetch(Ticket, ticket_id) | {"updated_at": 0} == deleted | restored
    assert ids(assert_success(list_tickets(client, staff), 200)) == [ticket_id]
    assert ids(assert_success(list_tickets(client, admin, deleted="only"), 200)) == []


@pytest.mark.parametrize(
    ("who", "ticket", "status"),
    [("admin", "live", 409), ("staff", "live", 403), ("admin", "unknown", 404)],
)
def test_restore_refuses_live_tickets_staff_and_unknown_ids(
    request, client, make_ticket, admin, assert_refused, who, ticket, status
):
    account = request.getfixturevalue(who)
    ticket_id = 424242 if ticket == "unknown" else make_ticket(admin)
    assert_refused(lambda: restore(client, account, ticket_id), status)


# --- Stats ------------------------------------------------------------------------------------


def stats(client, account, **query):
    return get(client, account, STATS, **query)


def recount(rows, isp_id: int, branch_id: int) -> dict:
    """The stats, counted from the tickets table."""
    where = (isp_id, branch_id, None)  # live tickets of the branch
    live = [t for t in rows(Ticket) if (t["isp_id"], t["branch_id"], t["deleted_at"]) == where]
    still_open = [t for t in live if t["status"] in (0, 1, 4)]
    late = [t for t in still_open if t["due_at"] and as_utc(t["due_at"]) < now()]
    types = {key: 0 for key in ("billing", "fault", "installation", "other", "relocation")}
    return {
        "by_status": {str(s): sum(t["status"] == s for t in live) for s in range(5)},
        "by_priority": {str(p): sum(t["priority"] == p for t in live) for p in (1, 2, 3)},
        "by_type": {key: sum(t["type"] == key for t in live) for key in types},
        "unassigned_open": sum(t["assignee_id"] is None for t in still_open),
        "overdue": len(late),
    }


@pytest.fixture
def branch_tickets(staff, admin, other_admin, make_ticket):
    late = now() - timedelta(hours=2)
    make_ticket(staff, status=0, priority=3)
    make_ticket(staff, status=0, priority=3, due_at=late)
    make_ticket(staff, status=1, priority=2, assignee_id=staff.id, due_at=late)
    make_ticket(staff, status=2, priority=1, due_at=late)
    make_ticket(staff, status=3, priority=2)
    make_ticket(staff, status=0, priority=1, deleted_at=late, due_at=late)
    make_ticket(admin, branch_id=2, status=0, priority=3, due_at=late)
    make_ticket(other_admin, status=0, priority=3, due_at=late)


# (by_status, by_priority, unassigned_open, overdue)
@pytest.mark.parametrize(
    ("who", "query", "counts"),
    [
        ("staff", {}, ([2, 1, 1, 1], [1, 2, 2], 2, 2)),
        ("admin", {"branch_id": 1}, ([2, 1, 1, 1], [1, 2, 2], 2, 2)),
        ("admin", {"branch_id": 2}, ([1, 0, 0, 0], [0, 0, 1], 1, 1)),
        ("admin", {"branch_id": 7}, ([0, 0, 0, 0], [0, 0, 0], 0, 0)),
    ],
)
def test_stats_count_one_branchs_live_tickets(
    request, client, branch_tickets, rows, who, query, counts
):
    body = assert_success(stats(client, request.getfixturevalue(who), **query), 200)

    by_status, by_priority, unassigned_open, overdue = counts
    assert body["data"] == {
        "by_status": {str(code): n for code, n in enumerate([*by_status, 0])},
        "by_priority": {str(code): n for code, n in enumerate(by_priority, start=1)},
        # Every ticket made here is of the default type (test_ticket_types.py counts the rest).
        "by_type": {
            **dict.fromkeys(("billing", "fault", "installation", "other", "relocation"), 0),
            "other": sum(by_status),
        },
        "unassigned_open": unassigned_open,
        "overdue": overdue,
    }
    assert body["data"] == recount(rows, 1, query.get("branch_id", 1))


def test_stats_follow_every_kind_of_change(client, admin, staff, make_ticket, rows):
    """Create, assign, reprioritise, resolve, reopen, set a past due time, delete, restore."""
    first = make_ticket(staff)
    made = call(client, staff, "POST", TICKETS, {"title": "T", "description": "D", "priority": 3})
    second = assert_success(made, 201)["data"]["id"]
    steps = [
        ("PUT", ticket_url(first), {"assignee_id": staff.id}),
        ("PUT", ticket_url(second), {"priority": 1}),
        ("PUT", ticket_url(first, "/status"), {"status": 2}),
        ("PUT", ticket_url(first, "/status"), {"status": 0}),
        ("PUT", ticket_url(second), {"due_at": "2020-01-01 00:00:00"}),
        ("DELETE", ticket_url(first), None),
        ("POST", ticket_url(first, "/restore"), None),
        ("PUT", ticket_url(first), {"assignee_id": None}),
        ("DELETE", ticket_url(second), None),
    ]
    for method, url, body in steps:
        assert_success(call(client, admin, method, url, body), 200)
        assert assert_success(stats(client, staff), 200)["data"] == recount(rows, 1, 1)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("branch_id", "abc"),
        ("isp_id", "0"),
        ("user_id", "-1"),
        ("branch_id", "1.0"),
        ("status", "0"),
    ],
)
def test_bad_stats_query_is_422_on_that_parameter(client, admin, name, value):
    assert_error(stats(client, admin, **{name: value}), 422, name)
