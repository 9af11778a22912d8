"""Create Ticket, POST /api/v1/tickets: 201 with the new id; the ticket is stored as sent, open,
in the caller's ISP, created by the caller."""

import pytest
from support.catalogue import CREATE
from support.client import assert_success, scope_of

from tickets_service.models import Ticket


@pytest.mark.parametrize(
    ("priority", "subscriber"),
    [(1, "linked"), (2, "null"), (3, "absent")],
    ids=["priority-1-linked", "priority-2-null-subscriber", "priority-3-no-subscriber"],
)
def test_create_answers_201_with_the_id_of_the_ticket_stored_as_sent(
    client, staff, make_subscriber, rows, priority, subscriber
):
    subscriber_id = make_subscriber() if subscriber == "linked" else None
    sent = {
        **scope_of(staff),
        "title": "Connection Issue",
        "description": "Cannot connect to internet",
        "priority": priority,
    }
    if subscriber != "absent":
        sent["subscriber_id"] = subscriber_id

    response = client.post(CREATE.path, json=sent, headers=staff.headers)

    data = assert_success(response, 201, "Ticket created successfully")["data"]
    assert list(data) == ["id"]
    assert type(data["id"]) is int
    [row] = rows(Ticket)
    assert row["id"] == data["id"]
    assert (row["title"], row["description"]) == ("Connection Issue", "Cannot connect to internet")
    assert (row["priority"], row["subscriber_id"]) == (priority, subscriber_id)
    assert (row["status"], row["deleted_at"]) == (0, None)
    assert (row["isp_id"], row["branch_id"], row["created_by_id"]) == (1, 1, staff.id)


@pytest.mark.parametrize(("caller", "other"), [("admin", "staff"), ("staff", "admin")])
def test_the_caller_is_recorded_as_the_creator(request, client, make_ticket, fetch, caller, other):
    """Another user's ticket already exists, so copying any creator would not pass."""
    account = request.getfixturevalue(caller)
    make_ticket(request.getfixturevalue(other))
    sent = {**scope_of(account), "title": "Connection Issue", "description": "Down", "priority": 2}

    response = client.post(CREATE.path, json=sent, headers=account.headers)

    created = assert_success(response, 201, "Ticket created successfully")["data"]["id"]
    assert fetch(Ticket, created)["created_by_id"] == account.id


@pytest.mark.parametrize("caller", ["staff_branch2", "other_admin", "other_staff"])
def test_isp_and_branch_come_from_the_token_when_not_sent(request, client, fetch, caller):
    account = request.getfixturevalue(caller)
    sent = {"title": "Connection Issue", "description": "Down", "priority": 3}

    response = client.post(CREATE.path, json=sent, headers=account.headers)

    row = fetch(Ticket, assert_success(response, 201, "Ticket created successfully")["data"]["id"])
    assert (row["isp_id"], row["branch_id"]) == (account.isp_id, account.branch_id)
