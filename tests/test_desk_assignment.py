"""Issue 9, point 1: a ticket's owner. assignee_id is null or an active user of the ticket's
ISP who reaches its branch; it is set on create and update, shown on List and Fetch, and a
user who leaves keeps their open tickets, which the list still finds."""

import pytest
from desk_helpers import (
    DESK_FIELDS,
    TICKETS,
    USERS,
    call,
    desk_state,
    history_in_db,
    ids,
    list_tickets,
    ticket_url,
)

from tickets_service.models import Ticket

from conftest import assert_error, assert_success, scope_of

NEW_TICKET = {"title": "Router down", "description": "No link light since noon", "priority": 3}


@pytest.fixture
def assignees(make_user, admin, staff, staff_branch2, other_admin):
    """Who may and may not be assigned ISP 1 branch 1's tickets, by name."""
    return {
        "admin of the ISP, home branch 1": admin.id,
        "admin of the ISP, home branch 2": make_user(isp_id=1, branch_id=2, role="admin").id,
        "staff of the branch": staff.id,
        "staff of another branch": staff_branch2.id,
        "admin of another ISP": other_admin.id,
        "inactive staff of the branch": make_user(isp_id=1, branch_id=1, active=False).id,
        "inactive admin of the ISP": make_user(role="admin", active=False).id,
        "nobody": 999_999,
    }


ASSIGNABLE = ["admin of the ISP, home branch 1", "admin of the ISP, home branch 2"]
ASSIGNABLE += ["staff of the branch"]
NOT_ASSIGNABLE = ["staff of another branch", "admin of another ISP"]
NOT_ASSIGNABLE += ["inactive staff of the branch", "inactive admin of the ISP", "nobody"]


# --- Create and update ------------------------------------------------------------------------


@pytest.mark.parametrize("who", ASSIGNABLE)
def test_create_assigns_a_user_who_reaches_the_branch(client, staff, assignees, fetch, who):
    body = {**scope_of(staff), **NEW_TICKET, "assignee_id": assignees[who]}

    created = assert_success(call(client, staff, "POST", TICKETS, body), 201)

    assert fetch(Ticket, created["data"]["id"])["assignee_id"] == assignees[who]


@pytest.mark.parametrize("who", NOT_ASSIGNABLE)
def test_create_with_an_assignee_out_of_reach_is_422_and_creates_nothing(
    client, staff, assignees, rows, who
):
    before = desk_state(rows)
    body = {**scope_of(staff), **NEW_TICKET, "assignee_id": assignees[who]}

    assert_error(call(client, staff, "POST", TICKETS, body), 422, "assignee_id")

    assert desk_state(rows) == before


@pytest.mark.parametrize("who", ASSIGNABLE)
def test_update_assigns_a_user_who_reaches_the_branch(
    client, staff, make_ticket, assignees, fetch, who
):
    ticket_id = make_ticket(staff)

    response = call(client, staff, "PUT", ticket_url(ticket_id), {"assignee_id": assignees[who]})

    assert_success(response, 200, "Ticket updated successfully")
    assert fetch(Ticket, ticket_id)["assignee_id"] == assignees[who]


@pytest.mark.parametrize("who", NOT_ASSIGNABLE)
def test_update_to_an_assignee_out_of_reach_is_422_and_changes_nothing(
    client, staff, make_ticket, assignees, rows, who
):
    ticket_id = make_ticket(staff, assignee_id=staff.id)
    before = desk_state(rows)

    response = call(client, staff, "PUT", ticket_url(ticket_id), {"assignee_id": assignees[who]})

    assert_error(response, 422, "assignee_id")
    assert desk_state(rows) == before


def test_assignee_must_reach_the_tickets_branch_not_the_callers(
    client, admin, staff_branch2, make_ticket, fetch
):
    """An admin working on branch 1's ticket cannot hand it to branch 2's staff."""
    ticket_id = make_ticket(admin, branch_id=1)

    response = call(client, admin, "PUT", ticket_url(ticket_id), {"assignee_id": staff_branch2.id})

    assert_error(response, 422, "assignee_id")
    assert fetch(Ticket, ticket_id)["assignee_id"] is None


def test_update_with_null_unassigns(client, staff, make_ticket, fetch):
    ticket_id = make_ticket(staff, assignee_id=staff.id)

    response = call(client, staff, "PUT", ticket_url(ticket_id), {"assignee_id": None})

    assert_success(response, 200)
    assert fetch(Ticket, ticket_id)["assignee_id"] is None


@pytest.mark.parametrize("method", ["POST", "PUT"])
@pytest.mark.parametrize("value", ["2", 2.5, True, 0, -1, 2**31, [2], {"id": 2}, ""])
def test_assignee_id_that_is_not_an_id_is_422(client, staff, make_ticket, rows, method, value):
    ticket_id = make_ticket(staff)
    before = desk_state(rows)
    url = TICKETS if method == "POST" else ticket_url(ticket_id)
    body = {**NEW_TICKET, "assignee_id": value} if method == "POST" else {"assignee_id": value}

    assert_error(call(client, staff, method, url, body), 422, "assignee_id")

    assert desk_state(rows) == before


# --- Shown on List and Fetch ------------------------------------------------------------------


def test_list_and_fetch_show_the_assignee_after_the_spec_fields(client, staff, make_ticket):
    ticket_id = make_ticket(staff, assignee_id=staff.id)

    [item] = assert_success(list_tickets(client, staff), 200)["data"]
    ticket = assert_success(client.get(ticket_url(ticket_id), headers=staff.headers), 200)["data"]

    for shown, spec_last in ((item, "created_at"), (ticket, "created_at")):
        keys = list(shown)
        assert keys.index(spec_last) < keys.index("assignee_id")
        assert [key for key in keys if key in DESK_FIELDS] == DESK_FIELDS
        assert (shown["assignee_id"], shown["assignee_name"]) == (staff.id, "Staff One")


def test_unassigned_ticket_shows_null_assignee(client, staff, make_ticket):
    ticket_id = make_ticket(staff)

    ticket = assert_success(client.get(ticket_url(ticket_id), headers=staff.headers), 200)["data"]

    assert (ticket["assignee_id"], ticket["assignee_name"]) == (None, None)


# --- A user who leaves keeps their open tickets -----------------------------------------------


LEAVING = {"deactivated": {"is_active": False}, "moved to branch 2": {"branch_id": 2}}


@pytest.mark.parametrize("change", list(LEAVING))
def test_user_who_leaves_keeps_their_open_tickets_and_the_list_finds_them(
    client, admin, make_user, make_ticket, fetch, change
):
    leaver = make_user(isp_id=1, branch_id=1, name="Leaving Staff")
    open_ids = [make_ticket(admin, assignee_id=leaver.id, status=s) for s in (0, 1)]
    make_ticket(admin, assignee_id=admin.id)

    response = call(client, admin, "PUT", f"{USERS}/{leaver.id}", LEAVING[change])

    assert_success(response, 200, "User updated successfully")
    assert [fetch(Ticket, ticket_id)["assignee_id"] for ticket_id in open_ids] == [leaver.id] * 2
    body = assert_success(list_tickets(client, admin, assignee_id=str(leaver.id)), 200)
    assert sorted(ids(body)) == open_ids
    assert {item["assignee_name"] for item in body["data"]} == {"Leaving Staff"}
    assert body["meta"]["total"] == 2


@pytest.mark.parametrize("change", list(LEAVING))
def test_ticket_of_a_user_who_left_can_still_be_edited(
    client, admin, make_user, make_ticket, fetch, change
):
    """Keeping the assignee as it is does not re-check it."""
    leaver = make_user(isp_id=1, branch_id=1)
    ticket_id = make_ticket(admin, assignee_id=leaver.id)
    assert_success(call(client, admin, "PUT", f"{USERS}/{leaver.id}", LEAVING[change]), 200)

    body = {"title": "Still theirs", "assignee_id": leaver.id}
    assert_success(call(client, admin, "PUT", ticket_url(ticket_id), body), 200)

    row = fetch(Ticket, ticket_id)
    assert (row["title"], row["assignee_id"]) == ("Still theirs", leaver.id)


@pytest.mark.parametrize("change", list(LEAVING))
def test_user_who_left_cannot_be_given_another_ticket(
    client, admin, make_user, make_ticket, fetch, rows, change
):
    leaver = make_user(isp_id=1, branch_id=1)
    ticket_id = make_ticket(admin)
    assert_success(call(client, admin, "PUT", f"{USERS}/{leaver.id}", LEAVING[change]), 200)

    response = call(client, admin, "PUT", ticket_url(ticket_id), {"assignee_id": leaver.id})

    assert_error(response, 422, "assignee_id")
    assert fetch(Ticket, ticket_id)["assignee_id"] is None
    assert history_in_db(rows, ticket_id) == []
