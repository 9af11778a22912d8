"""On PostgreSQL every filter and sort of the ticket list reads through an index of the branch,
never a scan of the tickets table: the plans of the very statements the list runs, on a
branch large enough for the planner to choose (30,000 tickets, analysed)."""

import pytest
from sqlalchemy import event, text
from support.client import assert_success, scope_of
from support.database import explain, plan_nodes

from tickets_service.extensions import db

pytestmark = pytest.mark.postgres

TICKETS = "/api/v1/tickets"
# Each filter and sort, and the index the list's page should read it through.
LISTS = [
    ({}, "ix_tickets_live_scope_created"),
    ({"status": "1"}, "ix_tickets_live_scope_status"),
    ({"priority": "3"}, "ix_tickets_live_scope_priority"),
    ({"assignee_id": "ADMIN"}, "ix_tickets_live_scope_assignee"),
    ({"subscriber_id": "SUBSCRIBER"}, "ix_tickets_live_scope_subscriber"),
    ({"sort": "-updated_at"}, "ix_tickets_live_scope_updated"),
    ({"sort": "due_at"}, "ix_tickets_live_scope_due"),
    ({"sort": "status"}, "ix_tickets_live_scope_status_id"),
    ({"sort": "-priority"}, "ix_tickets_live_scope_priority_id"),
    ({"q": "case 12345"}, "ix_tickets_live_search"),
    ({"created_from": "2020-01-01", "created_to": "2020-01-02"}, "ix_tickets_live_scope_created"),
    ({"overdue": "true"}, "ix_tickets_live_scope_due"),
    ({"deleted": "only"}, "ix_tickets_deleted_scope"),
]


@pytest.fixture
def big_branch(app, db_url, admin, make_subscriber):
    if not db_url.startswith("postgres"):
        pytest.skip("needs TEST_DATABASE_URL pointing at PostgreSQL")
    subscriber = make_subscriber()
    with app.app_context(), db.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO tickets (isp_id, branch_id, subscriber_id, created_by_id, "
                "assignee_id, title, description, priority, status, reply_count, version, "
                "created_at, updated_at, deleted_at) "
                "SELECT 1, 1, CASE WHEN n % 50 = 0 THEN :subscriber END, :author, "
                "CASE WHEN n % 97 = 0 THEN :author END, "
                "'Ticket ' || n, 'Cannot connect, case ' || n, 1 + n % 3, n % 4, 0, 1, "
                "now() - n * interval '1 minute', now() - n * interval '1 minute', "
                "CASE WHEN n % 100 = 0 THEN now() END "
                "FROM generate_series(1, 30000) AS n"
            ),
            {"subscriber": subscriber, "author": admin.id},
        )
        # Every table the page reads (the links of each ticket too), as autovacuum would.
        connection.execute(text("ANALYZE"))
    return subscriber


def plan_of_the_page(app, client, admin, params) -> dict:
    """EXPLAIN of the list's page statement, as the list ran it."""
    seen = []

    def capture(_connection, _cursor, statement, parameters, *_args):
        if "ORDER BY" in statement:
            seen.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        assert_success(
            client.get(TICKETS, query_string={**scope_of(admin), **params}, headers=admin.headers),
            200,
        )
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    return explain(app, *seen[-1])


def test_each_list_filter_and_sort_reads_through_its_index(app, client, admin, big_branch):
    """One branch loaded once, every list's plan read; all that miss their index reported."""
    stand_ins = {"SUBSCRIBER": str(big_branch), "ADMIN": str(admin.id)}
    missed = []
    for params, index in LISTS:
        params = {name: stand_ins.get(value, value) for name, value in params.items()}
        plan = plan_of_the_page(app, client, admin, params)
        on_tickets = [n for n in plan_nodes(plan) if n.get("Relation Name") == "tickets"]
        used = {n.get("Index Name") for n in plan_nodes(plan)}
        if not on_tickets or any(n["Node Type"] == "Seq Scan" for n in on_tickets):
            missed.append((params, "scans the table", plan))
        elif index not in used:
            missed.append((params, f"uses {sorted(filter(None, used))}, not {index}"))
    assert not missed, missed
