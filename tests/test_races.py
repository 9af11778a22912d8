"""No 5xx from races, and no corrupted work. Requests are fired at the same instant from threads
(each with its own app context and database session): on PostgreSQL they really run at once (row
locks, unique keys); on SQLite writers queue on BEGIN IMMEDIATE."""

from itertools import pairwise

import pytest
from support.client import assert_error, assert_success, call, create_ticket, in_parallel
from support.database import as_utc, history_of, read_rows
from support.urls import LOGOUT, SUBSCRIBERS, TICKETS, USERS, ticket_url

from tickets_service.models import (
    HistoryAction,
    RevokedToken,
    Subscriber,
    Ticket,
    TicketReply,
    User,
)


def fire(app, requests: list[tuple]) -> list:
    """Send (account, method, url[, body[, headers]]) requests all at once; their answers."""

    def sender(account, method, url, body=None, headers=None):
        return lambda: call(app.test_client(), account, method, url, body, headers=headers)

    return in_parallel([sender(*request) for request in requests])


def statuses(responses) -> list[int]:
    return sorted(response.status_code for response in responses)


def check_envelopes(responses, expected: dict[int, str | None]) -> None:
    """Every answer has one of the expected statuses, each in its envelope."""
    for response in responses:
        assert response.status_code in expected, statuses(responses)
        if response.status_code < 400:
            assert_success(response, response.status_code, expected[response.status_code])
        else:
            assert_error(response, response.status_code)


# --- Unique keys: 409, never 500 ----------------------------------------------------------------


def test_concurrent_creates_of_one_external_id_make_one_subscriber_and_409s(app, admin):
    body = {"name": "Jane Roe", "external_id": "crm-77"}

    responses = fire(app, [(admin, "POST", SUBSCRIBERS, body)] * 8)

    check_envelopes(responses, {201: "Subscriber created successfully", 409: None})
    assert statuses(responses) == [201] + [409] * 7
    assert [row["external_id"] for row in read_rows(app, Subscriber)] == ["crm-77"]


def test_concurrent_syncs_of_one_external_id_make_one_subscriber(app, admin):
    url = f"{SUBSCRIBERS}/by-external-id/crm-78"

    responses = fire(app, [(admin, "PUT", url, {"name": f"Jane {n}"}) for n in range(8)])

    check_envelopes(responses, {200: None, 201: None, 409: None})
    assert statuses(responses).count(201) == 1
    (subscriber,) = read_rows(app, Subscriber)
    assert subscriber["external_id"] == "crm-78"


def test_concurrent_updates_to_one_external_id_give_it_to_one_subscriber(
    app, admin, make_subscriber
):
    subscribers = [make_subscriber(name=f"Subscriber {n}") for n in range(6)]
    body = {"external_id": "crm-79"}

    responses = fire(app, [(admin, "PUT", f"{SUBSCRIBERS}/{s}", body) for s in subscribers])

    check_envelopes(responses, {200: "Subscriber updated successfully", 409: None})
    assert statuses(responses) == [200] + [409] * 5
    holders = [row for row in read_rows(app, Subscriber) if row["external_id"] == "crm-79"]
    assert len(holders) == 1


def test_concurrent_creates_of_one_email_make_one_user_and_409s(app, admin):
    body = {"name": "Ann", "email": "ann@isp.example", "role": "staff", "password": "long enough!"}

    responses = fire(app, [(admin, "POST", USERS, body)] * 8)

    check_envelopes(responses, {201: "User created successfully", 409: None})
    assert statuses(responses) == [201] + [409] * 7
    assert [row["email"] for row in read_rows(app, User)].count("ann@isp.example") == 1


def test_concurrent_creates_in_a_new_branch_are_all_kept_and_counted(app, client, admin):
    """The first tickets of a branch race to create its count rows (an upsert, not a 409)."""
    body = {"branch_id": 7, "title": "Outage", "description": "Street down", "priority": 3}

    responses = fire(app, [(admin, "POST", TICKETS, body)] * 12)

    check_envelopes(responses, {201: "Ticket created successfully"})
    assert len({r.get_json()["data"]["id"] for r in responses}) == 12
    assert len(read_rows(app, Ticket)) == 12
    stats = call(client, admin, "GET", f"{TICKETS}/stats", query={"branch_id": 7})
    assert assert_success(stats, 200)["data"]["by_status"]["0"] == 12


# --- Logout: idempotent -------------------------------------------------------------------------


def test_sixteen_simultaneous_logouts_with_one_token_answer_200_or_401_and_store_it_once(
    app, client, staff
):
    responses = fire(app, [(staff, "POST", LOGOUT)] * 16)

    check_envelopes(responses, {200: "Logged out successfully", 401: None})
    assert 200 in statuses(responses)
    revoked = read_rows(app, RevokedToken)
    assert [row["user_id"] for row in revoked] == [staff.id]
    assert_error(client.get("/api/v1/auth/me", headers=staff.headers), 401)


# --- Writes racing a delete ---------------------------------------------------------------------

NOTE = {"internal": True}
RACING_WRITES = {
    "reply": ("POST", "/reply", lambda n: {"message": f"Reply {n}"}, 201, HistoryAction.REPLIED),
    "note": ("POST", "/reply", lambda n: {"message": f"Note{n}", **NOTE}, 201, HistoryAction.NOTED),
    "update": ("PUT", "", lambda n: {"title": f"Title {n}"}, 200, HistoryAction.UPDATED),
}


@pytest.mark.parametrize("write", sorted(RACING_WRITES))
def test_a_write_racing_a_delete_lands_before_it_or_is_404(app, client, admin, staff, write):
    method, suffix, body, success, action = RACING_WRITES[write]
    for _round in range(3):
        ticket_id = create_ticket(client, admin)
        writes = [(staff, method, ticket_url(ticket_id, suffix), body(n)) for n in range(8)]

        responses = fire(app, [(admin, "DELETE", ticket_url(ticket_id)), *writes])

        assert_success(responses[0], 200, "Ticket deleted successfully")
        check_envelopes(responses[1:], {success: None, 404: None})
        landed = statuses(responses[1:]).count(success)
        history = [entry["action"] for entry in history_of(app, ticket_id)]
        # Every acknowledged write is recorded, and all of them before the delete.
        assert history.count(action) == landed
        assert history[-1] == HistoryAction.DELETED
        assert history.count(HistoryAction.DELETED) == 1
        (ticket,) = [row for row in read_rows(app, Ticket) if row["id"] == ticket_id]
        replies = [row for row in read_rows(app, TicketReply) if row["ticket_id"] == ticket_id]
        assert ticket["reply_count"] == len(replies)
        assert all(as_utc(r["created_at"]) <= as_utc(ticket["deleted_at"]) for r in replies)
        if write in {"reply", "note"}:
            assert len(replies) == landed


def test_concurrent_deletes_of_one_ticket_delete_it_once(app, client, admin):
    ticket_id = create_ticket(client, admin)

    responses = fire(app, [(admin, "DELETE", ticket_url(ticket_id))] * 8)

    check_envelopes(responses, {200: "Ticket deleted successfully", 404: None})
    assert statuses(responses) == [200] + [404] * 7
    actions = [entry["action"] for entry in history_of(app, ticket_id)]
    assert actions == [HistoryAction.CREATED, HistoryAction.DELETED]


def test_concurrent_restores_of_one_ticket_restore_it_once(app, client, admin):
    ticket_id = create_ticket(client, admin)
    assert_success(call(client, admin, "DELETE", ticket_url(ticket_id)), 200)

    responses = fire(app, [(admin, "POST", ticket_url(ticket_id, "/restore"))] * 8)

    check_envelopes(responses, {200: "Ticket restored successfully", 409: None})
    assert statuses(responses) == [200] + [409] * 7
    actions = [entry["action"] for entry in history_of(app, ticket_id)]
    assert actions == [HistoryAction.CREATED, HistoryAction.DELETED, HistoryAction.RESTORED]


# --- Concurrent changes to one ticket -----------------------------------------------------------


def test_concurrent_status_changes_leave_an_unbroken_history_chain(app, client, admin, staff):
    for _round in range(3):
        ticket_id = create_ticket(client, admin)
        url = ticket_url(ticket_id, "/status")
        changes = [
            (account, "PUT", url, {"status": n % 4}) for n, account in enumerate([admin, staff] * 6)
        ]

        responses = fire(app, changes)

        check_envelopes(responses, {200: "Ticket status updated successfully"})
        chain = [
            (entry["old"], entry["new"])
            for entry in history_of(app, ticket_id)
            if entry["action"] == HistoryAction.STATUS_CHANGED
        ]
        assert chain, "no status change was recorded"
        assert chain[0][0] == 0
        for (_old, new), (old, _new) in pairwise(chain):
            assert old == new, chain
        assert all(old != new for old, new in chain)
        (ticket,) = [row for row in read_rows(app, Ticket) if row["id"] == ticket_id]
        assert ticket["status"] == chain[-1][1]


def test_branch_stats_stay_true_after_concurrent_status_changes(app, client, admin, staff):
    tickets = [create_ticket(client, admin) for _ in range(3)]
    changes = [
        (account, "PUT", ticket_url(ticket_id, "/status"), {"status": (n + k) % 4})
        for k, ticket_id in enumerate(tickets)
        for n, account in enumerate([admin, staff] * 3)
    ]

    check_envelopes(fire(app, changes), {200: "Ticket status updated successfully"})

    stats = assert_success(client.get(f"{TICKETS}/stats", headers=admin.headers), 200)["data"]
    actual = [row["status"] for row in read_rows(app, Ticket)]
    by_status = {int(code): n for code, n in stats["by_status"].items()}
    assert by_status == {code: actual.count(code) for code in range(5)}


def test_concurrent_replies_are_all_kept_each_with_its_own_etag(app, client, admin, staff):
    ticket_id = create_ticket(client, admin)
    url = ticket_url(ticket_id, "/reply")

    responses = fire(app, [(staff, "POST", url, {"message": f"Reply {n}"}) for n in range(10)])

    check_envelopes(responses, {201: "Reply added successfully"})
    assert len({response.headers["ETag"] for response in responses}) == 10
    detail = assert_success(client.get(ticket_url(ticket_id), headers=admin.headers), 200)["data"]
    assert detail["replies_total"] == 10
    sent = sorted(f"Reply {n}" for n in range(10))
    assert sorted(r["message"] for r in detail["replies"]) == sent


def test_of_concurrent_writes_with_one_if_match_exactly_one_applies(app, client, admin):
    ticket_id = create_ticket(client, admin)
    tag = client.get(ticket_url(ticket_id), headers=admin.headers).headers["ETag"]
    writes = [
        (admin, "PUT", ticket_url(ticket_id), {"title": f"Edit {n}"}, {"If-Match": tag})
        for n in range(8)
    ]

    responses = fire(app, writes)

    check_envelopes(responses, {200: "Ticket updated successfully", 412: None})
    assert statuses(responses) == [200] + [412] * 7
    (winner,) = [response for response in responses if response.status_code == 200]
    losers = {r.headers["ETag"] for r in responses if r.status_code == 412}
    assert losers == {winner.headers["ETag"]}
    updates = [e for e in history_of(app, ticket_id) if e["action"] == HistoryAction.UPDATED]
    assert len(updates) == 1
    (ticket,) = read_rows(app, Ticket)
    assert ticket["title"] == updates[0]["new"]


@pytest.mark.parametrize(
    "body", [{"role": "staff"}, {"is_active": False}], ids=["demote", "deactivate"]
)
@pytest.mark.parametrize("admins", [2, 4])
def test_admins_demoting_each_other_at_once_leave_one_and_get_no_5xx(app, make_user, body, admins):
    """Each demotion locks the ISP's admins in one order before its target: with two admins,
    one wins and the other is 401 (its own token went with its role) or 409 (the last admin);
    with four, pairs demoting two others both win. Never a deadlock's 503."""
    team = [make_user(isp_id=1, branch_id=1, role="admin") for _ in range(admins)]
    # Two admins each demote the other; with four, the first two demote the last two.
    targets = team[::-1] if admins == 2 else [team[2], team[3]]

    responses = fire(app, [(team[n], "PUT", f"{USERS}/{targets[n].id}", body) for n in range(2)])

    check_envelopes(responses, {200: "User updated successfully", 401: None, 409: None})
    active = [row for row in read_rows(app, User) if row["role"] == "admin" and row["is_active"]]
    if admins == 2:
        assert statuses(responses)[0] == 200 and statuses(responses)[1] in {401, 409}
        assert len(active) == 1
    else:
        assert statuses(responses) == [200, 200]
        assert sorted(row["id"] for row in active) == [team[0].id, team[1].id]
