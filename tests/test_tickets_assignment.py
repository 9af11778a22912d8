"""A ticket's owner. assignee_id is null or an active user of the ticket's
ISP who reaches its branch; set on create and update, shown on List and Fetch; a user who
leaves keeps their open tickets, and the list still finds them."""

import pytest
from support.client import DESK_FIELDS, assert_success, call, get, ids, list_tickets
from support.urls import TICKETS, USERS, ticket_url

from tickets_service.models import Ticket

NEW = {"title": "Router down", "description": "No link light", "priority": 3}
ASSIGNABLE = ["admin of the ISP", "admin of the ISP, home branch 2", "staff of the branch"]
NOT_ASSIGNABLE = ["staff of another branch", "admin of another ISP", "inactive staff"]
NOT_ASSIGNABLE += ["inactive admin", "nobody"]


@pytest.fixture
def assignees(make_user, admin, staff, staff_branch2, other_admin) -> dict:
    """Who may and may not be assigned ISP 1 branch 1's tickets, by name."""
    return {
        "admin of the ISP": admin.id,
        "admin of the ISP, home branch 2": make_user(isp_id=1, branch_id=2, role="admin").id,
        "staff of the branch": staff.id,
        "staff of another branch": staff_branch2.id,
        "admin of another ISP": other_admin.id,
        "inactive staff": make_user(isp_id=1, branch_id=1, active=False).id,
        "inactive admin": make_user(role="admin", active=False).id,
        "nobody": 999_999,
    }


def assign(client, account, method: str, ticket_id: int, assignee):
    """POST a new ticket (ticket_id unused) or PUT the ticket, naming the assignee."""
    if method == "POST":
        return call(client, account, "POST", TICKETS, {**NEW, "assignee_id": assignee})
    return call(client, account, "PUT", ticket_url(ticket_id), {"assignee_id": assignee})


@pytest.mark.parametrize("method", ["POST", "PUT"])
@pytest.mark.parametrize("who", ASSIGNABLE)
def test_a_user_who_reaches_the_branch_is_assigned(
    client, staff, make_ticket, assignees, fetch, method, who
):
    ticket_id = make_ticket(staff)

    response = assign(client, staff, method, ticket_id, assignees[who])

    body = assert_success(response, 201 if method == "POST" else 200)
    assert fetch(Ticket, body.get("data", {}).get("id", ticket_id))["assignee_id"] == assignees[who]


@pytest.mark.parametrize("method", ["POST", "PUT"])
@pytest.mark.parametrize("who", [*NOT_ASSIGNABLE, "2", 2.5, True, 0, -1, 2**31, [2], {"id": 2}, ""])
def test_an_assignee_out_of_reach_or_not_an_id_is_422_and_nothing_changes(
    client, staff, make_ticket, assignees, assert_refused, method, who
):
    ticket_id = make_ticket(staff, assignee_id=staff.id)
    assignee = assignees[who] if who in NOT_ASSIGNABLE else who
    assert_refused(lambda: assign(client, staff, method, ticket_id, assignee), 422, "assignee_id")


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_the_assignee_must_reach_the_tickets_branch_not_the_callers(
    client, admin, staff_branch2, make_ticket, assert_refused, method
):
    """An admin working on branch 1 cannot hand its tickets to branch 2's staff."""
    ticket_id = make_ticket(admin, branch_id=1)
    request = lambda: assign(client, admin, method, ticket_id, staff_branch2.id)  # noqa: E731
    assert_refused(request, 422, "assignee_id")


def test_null_unassigns_and_shows_as_null(client, staff, make_ticket, fetch):
    ticket_id = make_ticket(staff, assignee_id=staff.id)

    assert_success(assign(client, staff, "PUT", ticket_id, None), 200)

    assert fetch(Ticket, ticket_id)["assignee_id"] is None
    shown = assert_success(get(client, staff, ticket_url(ticket_id)), 200)["data"]
    assert (shown["assignee_id"], shown["assignee_name"]) == (None, None)


def test_list_and_fetch_show_the_assignee_after_the_spec_fields(client, staff, make_ticket):
    ticket_id = make_ticket(staff, assignee_id=staff.id)

    [item] = assert_success(list_tickets(client, staff), 200)["data"]
    ticket = assert_success(get(client, staff, ticket_url(ticket_id)), 200)["data"]

    for shown in (item, ticket):
        keys = list(shown)
        assert keys.index("created_at") < keys.index("assignee_id")
        assert [key for key in keys if key in DESK_FIELDS] == DESK_FIELDS
        assert (shown["assignee_id"], shown["assignee_name"]) == (staff.id, "Staff One")


# --- A user who leaves keeps their open tickets -----------------------------------------------

LEAVING = {"deactivated": {"is_active": False}, "moved to branch 2": {"branch_id": 2}}


@pytest.fixture
def leaver(client, admin, make_user, make_ticket):
    """Branch 1 staff with two open tickets; `leave(change)` through PUT /users -> (its id, the
    tickets)."""
    user = make_user(isp_id=1, branch_id=1, name="Leaving Staff")
    tickets = [make_ticket(admin, assignee_id=user.id, status=s) for s in (0, 1)]
    make_ticket(admin, assignee_id=admin.id)

    def leave(change: str):
        response = call(client, admin, "PUT", f"{USERS}/{user.id}", LEAVING[change])
        assert_success(response, 200, "User updated successfully")
        return user.id, tickets

    return leave


@pytest.mark.parametrize("change", list(LEAVING))
def test_a_user_who_leaves_keeps_their_open_tickets_and_the_list_finds_them(
    client, admin, leaver, fetch, change
):
    user_id, tickets = leaver(change)

    assert [fetch(Ticket, t)["assignee_id"] for t in tickets] == [user_id] * 2
    body = assert_success(list_tickets(client, admin, assignee_id=str(user_id)), 200)
    assert (sorted(ids(body)), body["meta"]["total"]) == (tickets, 2)
    assert {item["assignee_name"] for item in body["data"]} == {"Leaving Staff"}


@pytest.mark.parametrize("change", list(LEAVING))
def test_a_ticket_kept_by_a_user_who_left_can_still_be_edited(client, admin, leaver, fetch, change):
    """An assignee kept as it is is not checked again."""
    user_id, tickets = leaver(change)
    body = {"title": "Still theirs", "assignee_id": user_id}

    assert_success(call(client, admin, "PUT", ticket_url(tickets[0]), body), 200)

    row = fetch(Ticket, tickets[0])
    assert (row["title"], row["assignee_id"]) == ("Still theirs", user_id)


@pytest.mark.parametrize("change", list(LEAVING))
def test_a_user_who_left_cannot_be_given_another_ticket(
    client, admin, leaver, make_ticket, assert_refused, change
):
    user_id, _ = leaver(change)
    ticket_id = make_ticket(admin)
    assert_refused(lambda: assign(client, admin, "PUT", ticket_id, user_id), 422, "assignee_id")
