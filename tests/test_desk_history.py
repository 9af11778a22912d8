"""Issue 9, point 3: every change to a ticket is recorded, with who made it and when, in the
transaction of the change; GET /tickets/{id}/history pages through it oldest first, and the API
never edits or deletes it."""

from datetime import UTC, datetime

import pytest
from desk_helpers import (
    TICKETS,
    TIMESTAMP,
    as_utc,
    call,
    desk_state,
    history_in_db,
    stamp,
    ticket_url,
)

from tickets_service.models import TicketHistory

from conftest import assert_error, assert_success, scope_of

HISTORY_KEYS = ["id", "action", "field", "old", "new", "user_id", "user_name", "created_at"]


def create(client, account, **fields) -> int:
    body = {**scope_of(account), "title": "Slow", "description": "Evenings", "priority": 1}
    return assert_success(call(client, account, "POST", TICKETS, {**body, **fields}), 201)["data"][
        "id"
    ]


def history(client, account, ticket_id: int, **query):
    return client.get(
        ticket_url(ticket_id, "/history"), query_string=query, headers=account.headers
    )


def actions(client, account, ticket_id: int) -> list[tuple]:
    body = assert_success(history(client, account, ticket_id), 200)
    return [(e["action"], e["field"], e["old"], e["new"], e["user_id"]) for e in body["data"]]


# --- Each kind of change ----------------------------------------------------------------------


def test_create_records_created_by_its_author(client, staff, rows):
    ticket_id = create(client, staff)

    assert history_in_db(rows, ticket_id) == [("created", None, None, None, staff.id)]
    assert actions(client, staff, ticket_id) == [("created", None, None, None, staff.id)]


def test_create_with_an_assignee_also_records_the_assignment(client, staff, admin, rows):
    ticket_id = create(client, staff, assignee_id=admin.id)

    assert history_in_db(rows, ticket_id) == [
        ("created", None, None, None, staff.id),
        ("assigned", "assignee_id", None, admin.id, staff.id),
    ]


# (body of the PUT, the entries after `created`, the old values given on create)
EDITS = {
    "title": ({"title": "Dead"}, [("updated", "title", "Slow", "Dead")]),
    "description": (
        {"description": "All day"},
        [("updated", "description", "Evenings", "All day")],
    ),
    "priority": ({"priority": 3}, [("updated", "priority", 1, 3)]),
    "due_at": (
        {"due_at": "2031-01-02 03:04:05"},
        [("updated", "due_at", None, "2031-01-02 03:04:05")],
    ),
    "two fields": (
        {"title": "Dead", "priority": 2},
        [("updated", "title", "Slow", "Dead"), ("updated", "priority", 1, 2)],
    ),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_update_records_each_edited_field_old_to_new(client, staff, rows, edit):
    ticket_id = create(client, staff)
    changes, expected = EDITS[edit]

    assert_success(call(client, staff, "PUT", ticket_url(ticket_id), changes), 200)

    recorded = history_in_db(rows, ticket_id)[1:]
    assert sorted(recorded) == sorted((*entry, staff.id) for entry in expected)


def test_update_of_the_subscriber_records_old_and_new_ids(client, staff, make_subscriber, rows):
    first, second = make_subscriber(name="A"), make_subscriber(name="B")
    ticket_id = create(client, staff, subscriber_id=first)

    assert_success(
        call(client, staff, "PUT", ticket_url(ticket_id), {"subscriber_id": second}), 200
    )

    assert history_in_db(rows, ticket_id)[1:] == [
        ("updated", "subscriber_id", first, second, staff.id)
    ]


@pytest.mark.parametrize("new", ["admin", None])
def test_assignment_records_assigned_from_to(client, staff, admin, rows, new):
    ticket_id = create(client, staff, assignee_id=staff.id)
    new_id = admin.id if new else None

    assert_success(call(client, staff, "PUT", ticket_url(ticket_id), {"assignee_id": new_id}), 200)

    assert history_in_db(rows, ticket_id)[2:] == [
        ("assigned", "assignee_id", staff.id, new_id, staff.id)
    ]


def test_status_change_records_from_to(client, staff, rows):
    ticket_id = create(client, staff)

    body = {**scope_of(staff), "status": 2}
    assert_success(call(client, staff, "PUT", ticket_url(ticket_id, "/status"), body), 200)

    assert history_in_db(rows, ticket_id)[1:] == [("status_changed", "status", 0, 2, staff.id)]


@pytest.mark.parametrize(("internal", "action"), [(False, "replied"), (True, "noted")])
def test_reply_and_note_are_recorded(client, staff, rows, internal, action):
    ticket_id = create(client, staff)

    body = {"message": "Checked the line.", "internal": internal}
    assert_success(call(client, staff, "POST", ticket_url(ticket_id, "/reply"), body), 201)

    assert history_in_db(rows, ticket_id)[1:] == [(action, None, None, None, staff.id)]


def test_delete_and_restore_are_recorded_by_the_admin(client, staff, admin, rows):
    ticket_id = create(client, staff)

    assert_success(call(client, admin, "DELETE", ticket_url(ticket_id)), 200)
    assert_success(call(client, admin, "POST", ticket_url(ticket_id, "/restore")), 200)

    assert history_in_db(rows, ticket_id)[1:] == [
        ("deleted", None, None, None, admin.id),
        ("restored", None, None, None, admin.id),
    ]


@pytest.mark.parametrize(
    ("suffix", "method", "body"),
    [
        ("", "PUT", {"title": "Slow", "priority": 1}),
        ("", "PUT", {"due_at": None}),
        ("/status", "PUT", {"status": 0}),
    ],
)
def test_a_change_that_changes_nothing_records_nothing(client, staff, rows, suffix, method, body):
    ticket_id = create(client, staff)
    before = desk_state(rows)

    assert_success(call(client, staff, method, ticket_url(ticket_id, suffix), body), 200)

    assert desk_state(rows) == before


@pytest.mark.parametrize(
    "body", [{"title": ""}, {"priority": 9}, {"assignee_id": 999_999}, {"subscriber_id": 999_999}]
)
def test_a_refused_change_records_nothing(client, staff, rows, body):
    ticket_id = create(client, staff)
    before = desk_state(rows)

    assert_error(call(client, staff, "PUT", ticket_url(ticket_id), body), 422)

    assert desk_state(rows) == before


# --- The endpoint -----------------------------------------------------------------------------


def test_history_entries_show_who_and_when_in_order(client, staff, admin, rows):
    ticket_id = create(client, staff)
    assert_success(call(client, admin, "PUT", ticket_url(ticket_id), {"priority": 3}), 200)

    body = assert_success(history(client, staff, ticket_id), 200)

    stored = [row for row in rows(TicketHistory) if row["ticket_id"] == ticket_id]
    assert [list(entry) for entry in body["data"]] == [HISTORY_KEYS] * 2
    assert [(e["id"], e["user_id"], e["user_name"]) for e in body["data"]] == [
        (stored[0]["id"], staff.id, "Staff One"),
        (stored[1]["id"], admin.id, "Admin"),
    ]
    for entry, row in zip(body["data"], stored, strict=True):
        assert TIMESTAMP.match(entry["created_at"])
        assert entry["created_at"] == stamp(as_utc(row["created_at"]))
    assert body["meta"] == {"page": 1, "per_page": 50, "total": 2, "pages": 1}


def test_history_pages_oldest_first(client, staff, rows):
    ticket_id = create(client, staff)
    for priority in (2, 3, 1, 2):
        assert_success(
            call(client, staff, "PUT", ticket_url(ticket_id), {"priority": priority}), 200
        )
    stored = [row["id"] for row in rows(TicketHistory)]

    pages = [
        assert_success(history(client, staff, ticket_id, page=page, per_page=2), 200)
        for page in (1, 2, 3, 4)
    ]

    assert [[e["id"] for e in page["data"]] for page in pages] == [
        stored[0:2],
        stored[2:4],
        stored[4:5],
        [],
    ]
    assert {(p["meta"]["total"], p["meta"]["pages"]) for p in pages} == {(5, 3)}


def test_history_of_a_deleted_ticket_is_404(client, admin, make_ticket):
    ticket_id = make_ticket(admin, deleted_at=datetime(2024, 1, 1, tzinfo=UTC))

    assert_error(history(client, admin, ticket_id), 404)


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "POST"])
def test_history_cannot_be_edited_or_deleted(client, admin, rows, method):
    ticket_id = create(client, admin)
    before = desk_state(rows)

    response = call(client, admin, method, ticket_url(ticket_id, "/history"), {"action": "x"})

    assert_error(response, 405)
    assert desk_state(rows) == before


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"page": "0"}, "page"),
        ({"page": "abc"}, "page"),
        ({"per_page": "201"}, "per_page"),
        ({"per_page": "-1"}, "per_page"),
        ({"sort": "id"}, "sort"),
        ({"isp_id": "x"}, "isp_id"),
    ],
)
def test_bad_history_query_is_422(client, staff, query, field):
    ticket_id = create(client, staff)

    assert_error(history(client, staff, ticket_id, **query), 422, field)
