"""Issue 9, points 6, 7 and 8: replies at scale (Fetch shows the first 100 and the total,
GET .../replies pages through all), restoring a deleted ticket, and a branch's stats."""

from datetime import timedelta

import pytest
from desk_helpers import (
    STATS,
    add_replies,
    as_utc,
    call,
    desk_state,
    ids,
    list_tickets,
    now,
    ticket_url,
)

from tickets_service.models import Ticket, TicketReply

from conftest import assert_error, assert_success, scope_of

REPLY_KEYS = ["id", "message", "user_name", "created_at", "user_id", "internal"]


# --- Replies at scale -------------------------------------------------------------------------


@pytest.fixture
def busy_ticket(app, staff, admin, make_ticket) -> int:
    """A ticket with 150 replies, alternating authors, every third one a note."""
    ticket_id = make_ticket(staff)
    for n in range(3):
        add_replies(app, ticket_id, [staff.id, admin.id] * 25, internal=n == 1)
    return ticket_id


def reply_ids_in_db(rows, ticket_id: int) -> list[int]:
    replies = [r for r in rows(TicketReply) if r["ticket_id"] == ticket_id]
    return [r["id"] for r in sorted(replies, key=lambda r: (as_utc(r["created_at"]), r["id"]))]


def test_fetch_shows_the_first_100_replies_and_the_total(client, staff, busy_ticket, rows):
    body = assert_success(client.get(ticket_url(busy_ticket), headers=staff.headers), 200)

    ticket = body["data"]
    assert [r["id"] for r in ticket["replies"]] == reply_ids_in_db(rows, busy_ticket)[:100]
    assert ticket["replies_total"] == 150
    assert list(ticket)[-1] == "replies_total"


def test_replies_endpoint_pages_through_all_replies_oldest_first(client, staff, busy_ticket, rows):
    pages = [
        assert_success(
            client.get(
                ticket_url(busy_ticket, "/replies"),
                query_string={"page": page, "per_page": 40},
                headers=staff.headers,
            ),
            200,
        )
        for page in (1, 2, 3, 4, 5)
    ]

    assert [len(p["data"]) for p in pages] == [40, 40, 40, 30, 0]
    assert [r["id"] for p in pages for r in p["data"]] == reply_ids_in_db(rows, busy_ticket)
    assert {(p["meta"]["total"], p["meta"]["pages"], p["meta"]["per_page"]) for p in pages} == {
        (150, 4, 40)
    }


def test_replies_endpoint_shows_each_reply_with_its_author_and_flag(
    client, staff, make_ticket, app
):
    ticket_id = make_ticket(staff)
    add_replies(app, ticket_id, [staff.id])
    add_replies(app, ticket_id, [staff.id], internal=True)

    body = assert_success(client.get(ticket_url(ticket_id, "/replies"), headers=staff.headers), 200)

    assert [list(r) for r in body["data"]] == [REPLY_KEYS] * 2
    assert [(r["user_id"], r["user_name"], r["internal"]) for r in body["data"]] == [
        (staff.id, "Staff One", False),
        (staff.id, "Staff One", True),
    ]
    assert body["meta"] == {"page": 1, "per_page": 50, "total": 2, "pages": 1}


def test_replies_of_a_deleted_ticket_are_404(client, admin, make_ticket):
    ticket_id = make_ticket(admin, deleted_at=now())

    assert_error(client.get(ticket_url(ticket_id, "/replies"), headers=admin.headers), 404)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"page": "0"}, "page"),
        ({"per_page": "201"}, "per_page"),
        ({"internal": "true"}, "internal"),
    ],
)
def test_bad_replies_query_is_422(client, staff, make_ticket, query, field):
    ticket_id = make_ticket(staff)

    response = client.get(
        ticket_url(ticket_id, "/replies"), query_string=query, headers=staff.headers
    )

    assert_error(response, 422, field)


# --- Restore ----------------------------------------------------------------------------------


def restore(client, account, ticket_id: int, **query):
    return client.post(
        ticket_url(ticket_id, "/restore"), query_string=query, headers=account.headers
    )


def test_admin_restores_a_deleted_ticket_as_it_was(client, admin, staff, make_ticket, fetch, app):
    ticket_id = make_ticket(staff, assignee_id=staff.id, status=1, priority=3)
    add_replies(app, ticket_id, [staff.id])
    assert_success(call(client, admin, "DELETE", ticket_url(ticket_id)), 200)
    deleted = fetch(Ticket, ticket_id)

    response = restore(client, admin, ticket_id, **scope_of(admin))

    assert_success(response, 200, "Ticket restored successfully")
    restored = fetch(Ticket, ticket_id)
    assert restored["deleted_at"] is None
    unchanged = ("status", "priority", "assignee_id", "reply_count", "title")
    assert {k: restored[k] for k in unchanged} == {k: deleted[k] for k in unchanged}
    assert ids(assert_success(list_tickets(client, staff), 200)) == [ticket_id]
    assert ids(assert_success(list_tickets(client, admin, deleted="only"), 200)) == []
    fetched = assert_success(client.get(ticket_url(ticket_id), headers=staff.headers), 200)
    assert fetched["data"]["replies_total"] == 1


def test_restoring_a_ticket_that_is_not_deleted_is_409(client, admin, make_ticket, rows):
    ticket_id = make_ticket(admin)
    before = desk_state(rows)

    assert_error(restore(client, admin, ticket_id), 409)

    assert desk_state(rows) == before


@pytest.mark.parametrize("deleted", [True, False])
def test_staff_restoring_is_403(client, staff, make_ticket, rows, deleted):
    ticket_id = make_ticket(staff, deleted_at=now() if deleted else None)
    before = desk_state(rows)

    assert_error(restore(client, staff, ticket_id), 403)

    assert desk_state(rows) == before


def test_restoring_a_ticket_that_never_existed_is_404(client, admin, rows):
    before = desk_state(rows)

    assert_error(restore(client, admin, 424242), 404)

    assert desk_state(rows) == before


# --- Stats ------------------------------------------------------------------------------------


def stats(client, account, **query):
    return client.get(STATS, query_string=query, headers=account.headers)


def expected_stats(rows, isp_id: int, branch_id: int) -> dict:
    """The stats recounted from the tickets table."""
    live = [
        t
        for t in rows(Ticket)
        if (t["isp_id"], t["branch_id"]) == (isp_id, branch_id) and t["deleted_at"] is None
    ]
    open_ = [t for t in live if t["status"] in (0, 1)]
    return {
        "by_status": {str(s): sum(t["status"] == s for t in live) for s in range(4)},
        "by_priority": {str(p): sum(t["priority"] == p for t in live) for p in (1, 2, 3)},
        "unassigned_open": sum(t["assignee_id"] is None for t in open_),
        "overdue": sum(t["due_at"] is not None and as_utc(t["due_at"]) < now() for t in open_),
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


def test_stats_count_the_callers_branch_live_tickets(client, staff, branch_tickets, rows):
    body = assert_success(stats(client, staff), 200)

    assert body["data"] == {
        "by_status": {"0": 2, "1": 1, "2": 1, "3": 1},
        "by_priority": {"1": 1, "2": 2, "3": 2},
        "unassigned_open": 2,
        "overdue": 2,
    }
    assert body["data"] == expected_stats(rows, 1, 1)


def test_admin_stats_of_another_branch(client, admin, branch_tickets):
    body = assert_success(stats(client, admin, branch_id=2), 200)

    assert body["data"] == {
        "by_status": {"0": 1, "1": 0, "2": 0, "3": 0},
        "by_priority": {"1": 0, "2": 0, "3": 1},
        "unassigned_open": 1,
        "overdue": 1,
    }


def test_stats_of_an_empty_branch_show_every_code_at_zero(client, make_user):
    body = assert_success(stats(client, make_user(isp_id=3, branch_id=7)), 200)

    assert body["data"] == {
        "by_status": {"0": 0, "1": 0, "2": 0, "3": 0},
        "by_priority": {"1": 0, "2": 0, "3": 0},
        "unassigned_open": 0,
        "overdue": 0,
    }


def test_stats_follow_every_kind_of_change(client, admin, staff, make_ticket, rows):
    """Create, assign, reprioritise, resolve, reopen, delete and restore through the API."""
    first = make_ticket(staff)
    made = call(
        client, staff, "POST", "/api/v1/tickets", {"title": "T", "description": "D", "priority": 3}
    )
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
        assert call(client, admin, method, url, body).status_code == 200
        assert assert_success(stats(client, staff), 200)["data"] == expected_stats(rows, 1, 1)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"branch_id": "abc"}, "branch_id"),
        ({"isp_id": "0"}, "isp_id"),
        ({"user_id": "-1"}, "user_id"),
        ({"status": "0"}, "status"),
        ({"branch_id": "1.0"}, "branch_id"),
    ],
)
def test_bad_stats_query_is_422(client, admin, query, field):
    assert_error(stats(client, admin, **query), 422, field)
