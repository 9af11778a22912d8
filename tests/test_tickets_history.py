"""Every change to a ticket is recorded with who made it and when, in the transaction of the
change; GET /tickets/{id}/history pages through it oldest first. That the API never edits or
deletes it (405) is test_input_hygiene's; a deleted ticket's history (404) test_tickets_delete's."""

import pytest
from support.client import assert_error, assert_success, call, create_ticket, get, reply, set_status
from support.database import TIMESTAMP, desk_state, history_in_db, stamp
from support.urls import ticket_url

from tickets_service.models import TicketHistory

HISTORY_KEYS = ["id", "action", "field", "old", "new", "user_id", "user_name", "created_at"]
HISTORY_KEYS += ["key_id", "author"]


def put(client, account, ticket_id: int, body: dict):
    return call(client, account, "PUT", ticket_url(ticket_id), body)


# --- Each kind of change ----------------------------------------------------------------------


@pytest.mark.parametrize("assigned", [False, True])
def test_create_records_created_and_any_assignment(client, staff, admin, rows, assigned):
    ticket_id = create_ticket(client, staff, **({"assignee_id": admin.id} if assigned else {}))

    expected = [("created", None, None, None, staff.id)]
    expected += [("assigned", "assignee_id", None, admin.id, staff.id)] if assigned else []
    assert history_in_db(rows, ticket_id) == expected


# The PUT body, and the entries it adds after `created` (values a ticket created Slow/Evenings/1).
EDITS = {
    "title": ({"title": "Dead"}, [("updated", "title", "Slow", "Dead")]),
    "description": ({"description": "Day"}, [("updated", "description", "Evenings", "Day")]),
    "priority": ({"priority": 3}, [("updated", "priority", 1, 3)]),
    "due_at": (
        {"due_at": "2031-01-02 03:04:05"},
        [("updated", "due_at", None, "2031-01-02 03:04:05")],
    ),
    "subscriber": ({"subscriber_id": "S"}, [("updated", "subscriber_id", None, "S")]),
    "assignee": ({"assignee_id": "A"}, [("assigned", "assignee_id", None, "A")]),
    "two fields": (
        {"title": "Dead", "priority": 2},
        [("updated", "title", "Slow", "Dead"), ("updated", "priority", 1, 2)],
    ),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_update_records_each_edited_field_old_to_new(
    client, staff, admin, make_subscriber, rows, edit
):
    ticket_id = create_ticket(client, staff)
    names = {"S": make_subscriber(), "A": admin.id}
    changes, expected = EDITS[edit]
    changes = {k: names.get(v, v) if isinstance(v, str) else v for k, v in changes.items()}

    assert_success(put(client, staff, ticket_id, changes), 200)

    expected = [(*e[:3], names.get(e[3], e[3]), staff.id) for e in expected]
    assert sorted(history_in_db(rows, ticket_id)[1:]) == sorted(expected)


def test_unassigning_records_assigned_from_to_null(client, staff, rows):
    ticket_id = create_ticket(client, staff, assignee_id=staff.id)

    assert_success(put(client, staff, ticket_id, {"assignee_id": None}), 200)

    last = history_in_db(rows, ticket_id)[-1]
    assert last == ("assigned", "assignee_id", staff.id, None, staff.id)


def test_a_status_change_records_from_to(client, staff, rows):
    ticket_id = create_ticket(client, staff)

    assert_success(set_status(client, staff, ticket_id, 2), 200)

    assert history_in_db(rows, ticket_id)[1:] == [("status_changed", "status", 0, 2, staff.id)]


@pytest.mark.parametrize(("internal", "action"), [(False, "replied"), (True, "noted")])
def test_a_reply_or_note_is_recorded(client, staff, rows, internal, action):
    ticket_id = create_ticket(client, staff)

    assert_success(reply(client, staff, ticket_id, internal=internal), 201)

    assert history_in_db(rows, ticket_id)[1:] == [(action, None, None, None, staff.id)]


def test_delete_and_restore_are_recorded_by_the_admin(client, staff, admin, rows):
    ticket_id = create_ticket(client, staff)

    assert_success(call(client, admin, "DELETE", ticket_url(ticket_id)), 200)
    assert_success(call(client, admin, "POST", ticket_url(ticket_id, "/restore")), 200)

    assert history_in_db(rows, ticket_id)[1:] == [
        ("deleted", None, None, None, admin.id),
        ("restored", None, None, None, admin.id),
    ]


@pytest.mark.parametrize(
    ("suffix", "body", "status"),
    [
        ("", {"title": "Slow", "priority": 1}, 200),
        ("", {"due_at": None, "assignee_id": None}, 200),
        ("/status", {"status": 0}, 200),
        ("", {"title": ""}, 422),
        ("", {"priority": 9}, 422),
        ("", {"title": "New", "assignee_id": 999_999}, 422),
        ("", {"title": "New", "subscriber_id": 999_999}, 422),
    ],
)
def test_a_change_that_changes_nothing_or_is_refused_records_nothing(
    client, staff, rows, suffix, body, status
):
    ticket_id = create_ticket(client, staff)
    before = desk_state(rows)

    response = call(client, staff, "PUT", ticket_url(ticket_id, suffix), body)

    assert response.status_code == status
    assert desk_state(rows) == before


# --- The endpoint -----------------------------------------------------------------------------


def history(client, account, ticket_id: int, **query):
    return get(client, account, ticket_url(ticket_id, "/history"), **query)


def test_history_shows_each_entry_with_who_and_when(client, staff, admin, rows):
    ticket_id = create_ticket(client, staff)
    assert_success(put(client, admin, ticket_id, {"priority": 3}), 200)

    body = assert_success(history(client, staff, ticket_id), 200)

    stored = rows(TicketHistory)
    assert [list(entry) for entry in body["data"]] == [HISTORY_KEYS] * 2
    assert [(e["id"], e["user_id"], e["user_name"], e["created_at"]) for e in body["data"]] == [
        (row["id"], user.id, name, stamp(row["created_at"]))
        for row, user, name in zip(stored, (staff, admin), ("Staff One", "Admin"), strict=True)
    ]
    assert all(TIMESTAMP.match(e["created_at"]) for e in body["data"])
    assert body["meta"] == {"page": 1, "per_page": 50, "total": 2, "pages": 1}


def test_history_pages_oldest_first(client, staff, rows):
    ticket_id = create_ticket(client, staff)
    for priority in (2, 3, 1, 2):
        assert_success(put(client, staff, ticket_id, {"priority": priority}), 200)
    stored = [row["id"] for row in rows(TicketHistory)]

    pages = [
        assert_success(history(client, staff, ticket_id, page=p, per_page=2), 200)
        for p in (1, 2, 3, 4)
    ]

    shown = [[e["id"] for e in p["data"]] for p in pages]
    assert shown == [stored[:2], stored[2:4], stored[4:], []]
    assert {(p["meta"]["total"], p["meta"]["pages"]) for p in pages} == {(5, 3)}


@pytest.mark.parametrize(
    ("name", "value"),
    [("page", "0"), ("page", "abc"), ("per_page", "201"), ("per_page", "-1"), ("sort", "id")],
)
def test_bad_history_query_is_422_on_that_parameter(client, staff, name, value):
    ticket_id = create_ticket(client, staff)

    assert_error(history(client, staff, ticket_id, **{name: value}), 422, name)
