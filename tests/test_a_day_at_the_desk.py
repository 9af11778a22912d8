"""A day at the desk through the API alone. Staff find the open
high-priority unassigned tickets, take one, note it, answer the subscriber and resolve it,
then read its history and SLA times; an admin restores a ticket deleted by mistake, hires
staff and syncs a subscriber."""

from support.client import assert_success, call, ids, list_tickets, scope_of
from support.database import TIMESTAMP, as_utc, stamp
from support.urls import STATS, SUBSCRIBERS, TICKETS, USERS, ticket_url

from tickets_service.models import Subscriber, Ticket, User


def create(client, account, title: str, priority: int, **extra) -> int:
    body = {**scope_of(account), "title": title, "description": "Reported by phone"}
    response = call(client, account, "POST", TICKETS, {**body, "priority": priority, **extra})
    return assert_success(response, 201, "Ticket created successfully")["data"]["id"]


def test_a_day_at_the_desk(client, admin, staff, fetch):
    target = create(client, admin, "Whole street offline", 3)
    create(client, admin, "Taken already", 3, assignee_id=admin.id)
    create(client, admin, "Low priority", 1)
    stats_before = assert_success(client.get(STATS, headers=staff.headers), 200)["data"]

    # Find the open, high-priority, unassigned tickets.
    found = list_tickets(client, staff, status="0,1", priority="3", assignee_id="none")
    assert ids(assert_success(found, 200)) == [target]

    # Take it, note it for colleagues, answer the subscriber, work it, resolve it.
    steps = [
        ("PUT", "", {"assignee_id": staff.id}, 200),
        ("POST", "/reply", {"message": "Fibre cut at the cabinet", "internal": True}, 201),
        ("POST", "/reply", {"message": "A crew is on the way."}, 201),
        ("PUT", "/status", {"status": 1}, 200),
        ("PUT", "/status", {"status": 2}, 200),
    ]
    for method, suffix, body, status in steps:
        response = call(
            client, staff, method, ticket_url(target, suffix), {**scope_of(staff), **body}
        )
        assert_success(response, status)

    # The ticket now shows its owner and SLA times, as stored.
    ticket = assert_success(client.get(ticket_url(target), headers=staff.headers), 200)["data"]
    row = fetch(Ticket, target)
    assert (ticket["assignee_id"], ticket["assignee_name"], ticket["status"]) == (
        staff.id,
        "Staff One",
        2,
    )
    assert [(r["message"], r["internal"]) for r in ticket["replies"]] == [
        ("Fibre cut at the cabinet", True),
        ("A crew is on the way.", False),
    ]
    assert ticket["first_response_at"] == stamp(row["first_response_at"])
    assert ticket["resolved_at"] == stamp(row["resolved_at"])
    assert ticket["closed_at"] is None
    assert (
        as_utc(row["created_at"]) <= as_utc(row["first_response_at"]) <= as_utc(row["resolved_at"])
    )

    # Its history tells the story, oldest first, each step by its author.
    history = assert_success(
        client.get(ticket_url(target, "/history"), headers=staff.headers), 200
    )["data"]
    assert [(h["action"], h["field"], h["old"], h["new"], h["user_name"]) for h in history] == [
        ("created", None, None, None, "Admin"),
        ("assigned", "assignee_id", None, staff.id, "Staff One"),
        ("noted", None, None, None, "Staff One"),
        ("replied", None, None, None, "Staff One"),
        ("status_changed", "status", 0, 1, "Staff One"),
        ("status_changed", "status", 1, 2, "Staff One"),
    ]
    assert all(TIMESTAMP.match(h["created_at"]) for h in history)

    # The branch's numbers moved with it.
    stats = assert_success(client.get(STATS, headers=staff.headers), 200)["data"]
    assert stats["unassigned_open"] == stats_before["unassigned_open"] - 1
    assert (stats["by_status"]["0"], stats["by_status"]["2"]) == (
        stats_before["by_status"]["0"] - 1,
        stats_before["by_status"]["2"] + 1,
    )


def test_an_admins_day_restore_hire_and_sync(client, admin, fetch, rows):
    mistake = create(client, admin, "Deleted by mistake", 2)
    assert_success(call(client, admin, "DELETE", ticket_url(mistake)), 200)

    deleted = assert_success(list_tickets(client, admin, deleted="only"), 200)
    assert ids(deleted) == [mistake]
    restored = call(client, admin, "POST", ticket_url(mistake, "/restore"))
    assert_success(restored, 200, "Ticket restored successfully")

    hire = {"name": "New Hire", "email": "hire@example.test", "role": "staff"}
    hired = call(client, admin, "POST", USERS, {**hire, "password": "first day password"})
    hire_id = assert_success(hired, 201)["data"]["id"]
    assign = call(client, admin, "PUT", ticket_url(mistake), {"assignee_id": hire_id})
    assert_success(assign, 200)

    sync = {"name": "Acme Ltd", "phone": "+15550100"}
    synced = call(client, admin, "PUT", f"{SUBSCRIBERS}/by-external-id/crm-1001", sync)
    subscriber_id = assert_success(synced, 201)["data"]["id"]
    link = call(client, admin, "PUT", ticket_url(mistake), {"subscriber_id": subscriber_id})
    assert_success(link, 200)

    row = fetch(Ticket, mistake)
    assert (row["deleted_at"], row["assignee_id"], row["subscriber_id"]) == (
        None,
        hire_id,
        subscriber_id,
    )
    assert fetch(User, hire_id)["branch_id"] == 1
    assert [s["external_id"] for s in rows(Subscriber)] == ["crm-1001"]
    [item] = assert_success(list_tickets(client, admin), 200)["data"]
    assert (item["assignee_name"], item["subscriber_name"]) == ("New Hire", "Acme Ltd")
