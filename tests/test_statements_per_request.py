"""No N+1. The SQL statements behind each new list (and the
filtered ticket list, Fetch with many replies, and the stats) stay the same whether they
answer one row or many; each row brings its own user or subscriber, so a lazy load shows."""

from datetime import timedelta
from itertools import count

import pytest
from support.client import assert_success, scope_of
from support.database import add_replies, now
from support.urls import STATS, SUBSCRIBERS, TICKETS, USERS, ticket_url

from tickets_service.models import Ticket

MANY = 25


def statements(client, count_queries, account, url: str, query: dict | None = None):
    with count_queries() as counter:
        response = client.get(url, query_string=query, headers=account.headers)
    body = assert_success(response, 200)
    assert counter.count > 0
    # No request counts a ticket's replies: Fetch and /replies read the kept reply_count.
    assert not [s for s in counter.statements if "count(" in s.lower() and "ticket_replies" in s]
    return counter.count, body


def assert_constant(client, count_queries, account, url, grow, query=None) -> tuple[dict, dict]:
    """Statements for one row, then for MANY: equal. Returns both bodies."""
    grow(1)
    one, first = statements(client, count_queries, account, url, query)
    grow(MANY - 1)
    many, second = statements(client, count_queries, account, url, query)
    assert many == one, f"{one} statements for 1 row, {many} for {MANY}"
    return first, second


LIST_FILTERS = {
    "codes, search and sort": {
        "status": "0,1",
        "priority": "1,2,3",
        "q": "outage",
        "sort": "-due_at",
    },
    "times and overdue": {
        "created_from": "2000-01-01",
        "updated_since": "2000-01-01",
        "overdue": "true",
        "sort": "priority",
    },
    "unassigned": {"assignee_id": "none", "sort": "updated_at"},
    "deleted": {"deleted": "only", "sort": "status"},
}


@pytest.mark.parametrize("name", list(LIST_FILTERS))
def test_filtered_list_statements_do_not_grow(
    client, admin, make_user, make_subscriber, make_ticket, count_queries, name
):
    params = LIST_FILTERS[name]
    n = count()

    def grow(k):
        for _ in range(k):
            i = next(n)
            author = make_user(isp_id=1, branch_id=1)
            fields = {"title": f"Outage {i}", "due_at": now() - timedelta(hours=1)}
            fields["subscriber_id"] = make_subscriber(name=f"Subscriber {i}")
            if name != "unassigned":
                fields["assignee_id"] = author.id
            if name == "deleted":
                fields["deleted_at"] = now()
            make_ticket(author, **fields)

    first, second = assert_constant(
        client, count_queries, admin, TICKETS, grow, {**scope_of(admin), **params}
    )

    assert (len(first["data"]), len(second["data"])) == (1, MANY)
    assert len({item["subscriber_name"] for item in second["data"]}) == MANY


@pytest.mark.parametrize("suffix", ["/history", "/replies", ""])
def test_history_replies_and_fetch_statements_do_not_grow(
    app, client, admin, make_user, make_ticket, count_queries, suffix
):
    """Each reply (and its history entry) by its own author; Fetch reaches 150 replies."""
    ticket_id = make_ticket(admin, assignee_id=admin.id)
    per_step = 6 if suffix == "" else 1

    def grow(k):
        authors = [make_user(isp_id=1, branch_id=1).id for _ in range(k * per_step)]
        add_replies(app, ticket_id, authors, internal=len(authors) % 2 == 0)

    first, second = assert_constant(
        client, count_queries, admin, ticket_url(ticket_id, suffix), grow
    )

    if suffix:
        # The history starts with the database's own entries: created, assigned.
        start = 2 if suffix == "/history" else 0
        assert (len(first["data"]), len(second["data"])) == (start + 1, start + MANY)
        assert len({entry["user_name"] for entry in second["data"]}) == MANY + (start > 0)
    else:
        assert (second["data"]["replies_total"], len(second["data"]["replies"])) == (150, 100)


def test_subscriber_list_statements_do_not_grow(client, staff, make_subscriber, count_queries):
    n = count()

    def grow(k):
        for _ in range(k):
            make_subscriber(name=f"Ann {next(n)}", phone="+1555")

    first, second = assert_constant(
        client, count_queries, staff, SUBSCRIBERS, grow, {"q": "ann", "per_page": 200}
    )

    assert (len(first["data"]), len(second["data"])) == (1, MANY)


def test_user_list_statements_do_not_grow(client, make_user, count_queries):
    caller = make_user(isp_id=1, branch_id=1, role="admin")

    def grow(k):
        for _ in range(k):
            make_user(isp_id=1, branch_id=2)

    first, second = assert_constant(
        client, count_queries, caller, USERS, grow, {"role": "staff", "per_page": 200}
    )

    assert (len(first["data"]), len(second["data"])) == (1, MANY)


def test_stats_statements_do_not_grow(client, staff, make_ticket, count_queries, rows):
    n = count()

    def grow(k):
        for _ in range(k):
            i = next(n)
            make_ticket(staff, status=i % 4, priority=1 + i % 3, due_at=now() - timedelta(days=1))

    first, second = assert_constant(client, count_queries, staff, STATS, grow)

    assert sum(first["data"]["by_status"].values()) == 1
    assert sum(second["data"]["by_status"].values()) == MANY == len(rows(Ticket))
