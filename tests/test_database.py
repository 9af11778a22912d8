"""The database: the schema exists only through migrations that never drift from the models,
the list's indexes, integrity, faults (killed connections, an unreachable server), PostgreSQL
settings, and the exact SQL statements behind the hot endpoints."""

import threading
from concurrent.futures import ThreadPoolExecutor

import flask_migrate
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError, OperationalError
from support.catalogue import FETCH, LIST, REPLY, World
from support.client import assert_error, assert_success
from support.database import ON_POSTGRES, session
from support.processes import terminate_other_connections

from tickets_service.config import normalize_database_url
from tickets_service.errors import handle_database_unavailable
from tickets_service.extensions import db
from tickets_service.models import Ticket, TicketReply, compared_by_autogenerate
from tickets_service.webhooks.worker import run as run_worker

# Every list page and Fetch Ticket costs these statements, whatever it returns.
LIST_PAGE_STATEMENTS = 3  # the caller with its token's revocation, the page, the total
# The caller with its token's revocation, then the ticket with its first replies: one query on
# PostgreSQL (the replies aggregated as JSON), two elsewhere.
FETCH_TICKET_STATEMENTS = 2 if ON_POSTGRES else 3

UNREACHABLE_DATABASE = "postgresql://postgres@127.0.0.1:9/unreachable"


# --- Migrations and schema -------------------------------------------------------------------


def schema_differences(app) -> list:
    with app.app_context(), db.engine.connect() as connection:
        opts = {"compare_type": True, "include_object": compared_by_autogenerate}
        context = MigrationContext.configure(connection, opts=opts)
        return compare_metadata(context, db.metadata)


def test_the_migrated_schema_matches_the_models(app):
    assert schema_differences(app) == []


def test_downgrade_to_base_then_upgrade_rebuilds_the_schema(app):
    with app.app_context():
        db.session.remove()
        flask_migrate.downgrade(revision="base")
        with db.engine.connect() as connection:
            left = set(inspect(connection).get_table_names()) - {"alembic_version"}
        flask_migrate.upgrade()
        with db.engine.connect() as connection:
            rebuilt = set(inspect(connection).get_table_names())
    assert left == set()
    assert set(db.metadata.tables) <= rebuilt
    assert schema_differences(app) == []


@pytest.mark.parametrize("revision", ["0004", "base"])
def test_a_database_with_data_downgrades_and_upgrades_again(app, send, world, revision):
    """Tickets, replies, history, users and subscribers in place: every downgrade step runs
    (on SQLite a table rebuilt by a batch operation is referred to by other rows), and the
    upgrade brings the schema back."""
    assert_success(send(REPLY, world), 201)
    with app.app_context():
        db.session.remove()
        flask_migrate.downgrade(revision=revision)
        with db.engine.connect() as connection:
            version = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        flask_migrate.upgrade()
    assert version == ([] if revision == "base" else [(revision,)])
    assert schema_differences(app) == []


def test_constraints_follow_the_naming_convention(app):
    with app.app_context(), db.engine.connect() as connection:
        inspector = inspect(connection)
        foreign_keys = inspector.get_foreign_keys("tickets")
        unique = inspector.get_unique_constraints("users")
    named = {
        "fk_tickets_subscriber_id_subscribers",
        "fk_tickets_created_by_id_users",
        "fk_tickets_assignee_id_users",
        "fk_tickets_created_by_key_id_api_keys",
        "fk_tickets_parent_id_tickets",
    }
    if connection.dialect.name == "sqlite":
        # A key added to an existing table lives in its column's definition (0009, 0010),
        # where SQLAlchemy's reflection of SQLite reads no name; it is there all the same.
        named -= {"fk_tickets_created_by_key_id_api_keys", "fk_tickets_parent_id_tickets"}
        added = [fk for fk in foreign_keys if fk["name"] is None]
        assert sorted((fk["constrained_columns"], fk["referred_table"]) for fk in added) == [
            (["created_by_key_id"], "api_keys"),
            (["parent_id"], "tickets"),
        ]
    assert {fk["name"] for fk in foreign_keys if fk["name"]} == named
    assert [u["name"] for u in unique] == ["uq_users_email"]


def test_list_filters_and_order_are_indexed_over_live_tickets(app):
    with app.app_context(), db.engine.connect() as connection:
        indexes = {i["name"]: i for i in inspect(connection).get_indexes("tickets")}
    expected = {
        "ix_tickets_live_scope_created": ["isp_id", "branch_id", "created_at", "id"],
        "ix_tickets_live_scope_status": ["isp_id", "branch_id", "status", "created_at", "id"],
        "ix_tickets_live_scope_priority": ["isp_id", "branch_id", "priority", "created_at", "id"],
    }
    for name, columns in expected.items():
        assert indexes[name]["column_names"] == columns
        where = indexes[name].get("dialect_options", {})
        assert any("deleted_at IS NULL" in str(v) for v in where.values()), where


@pytest.mark.skipif(ON_POSTGRES, reason="PRAGMA foreign_keys is SQLite's")
def test_sqlite_connections_enforce_foreign_keys(app):
    with session(app) as own:
        enabled = own.execute(text("PRAGMA foreign_keys")).scalar()
    assert enabled == 1


def test_a_reply_to_a_missing_ticket_is_refused_by_the_database(app, admin, rows, snapshot):
    assert rows(Ticket) == []  # so no ticket id can match
    before = snapshot()
    with session(app) as own:
        own.add(TicketReply(ticket_id=1, user_id=admin.id, message="orphan"))
        with pytest.raises(IntegrityError):
            own.commit()
        own.rollback()
    assert snapshot() == before


# --- Faults and PostgreSQL settings ----------------------------------------------------------


def test_the_api_answers_503_when_the_database_is_unreachable(make_app, admin):
    client = make_app(SQLALCHEMY_DATABASE_URI=UNREACHABLE_DATABASE).test_client()
    assert_error(client.get("/api/v1/tickets/1", headers=admin.headers), 503)


@pytest.fixture
def postgres_url(db_url):
    if not db_url.startswith("postgres"):
        pytest.skip("needs TEST_DATABASE_URL pointing at PostgreSQL")
    return normalize_database_url(db_url)


@pytest.mark.postgres
def test_requests_survive_killed_connections(postgres_url, send, world):
    assert_success(send(FETCH, world), 200)

    assert terminate_other_connections(postgres_url) >= 1

    assert assert_success(send(FETCH, world), 200)["data"]["id"] == world.ticket_id


def deadlock(url: str, first: int, second: int) -> OperationalError:
    """Two transactions that lock two tickets in opposite orders: PostgreSQL breaks the cycle
    by failing one of them; that failure."""
    engine = create_engine(normalize_database_url(url))
    lock = text("SELECT id FROM tickets WHERE id = :id FOR UPDATE")
    holding = threading.Barrier(2)

    def take(one: int, other: int) -> OperationalError | None:
        with engine.connect() as connection, connection.begin():
            connection.execute(lock, {"id": one})
            holding.wait(timeout=10)
            try:
                connection.execute(lock, {"id": other})
            except OperationalError as err:
                return err
        return None

    try:
        with ThreadPoolExecutor(2) as pool:
            failures = [f for f in pool.map(take, (first, second), (second, first)) if f]
    finally:
        engine.dispose()
    assert len(failures) == 1
    return failures[0]


@pytest.mark.postgres
def test_a_request_that_loses_a_deadlock_is_409_not_503(postgres_url, app, admin, make_ticket):
    """It lost a race with a concurrent request, and nothing of it was kept: a conflict to
    retry, not a database outage."""
    lost = deadlock(postgres_url, make_ticket(admin), make_ticket(admin))

    with app.test_request_context():
        response = handle_database_unavailable(lost)

    assert response.status_code == 409
    assert response.get_json() == {
        "success": False,
        "message": "A concurrent change conflicted with this one; reload and retry.",
    }


@pytest.mark.postgres
def test_the_statement_timeout_comes_from_the_config(postgres_url, make_app):
    with session(make_app(DB_STATEMENT_TIMEOUT_MS=1234)) as own:
        assert own.execute(text("SHOW statement_timeout")).scalar_one() == "1234ms"


@pytest.mark.postgres
def test_the_pool_size_comes_from_the_config(postgres_url, make_app):
    with make_app(DB_POOL_SIZE=3).app_context():
        assert db.engine.pool.size() == 3


# --- SQL statements per request: exact, and no N+1 -------------------------------------------


@pytest.mark.parametrize("tickets", [1, 30])
def test_a_list_page_costs_a_fixed_number_of_statements(
    send, admin, make_user, make_subscriber, make_ticket, count_queries, tickets
):
    """Each ticket has its own subscriber and creator, so a lazy load per row would show."""
    for n in range(tickets):
        author = make_user(isp_id=1, branch_id=1)
        make_ticket(author, subscriber_id=make_subscriber(name=f"Subscriber {n}"))

    with count_queries() as counter:
        response = send(LIST, World(admin, 0))

    body = assert_success(response, 200)
    assert len({item["subscriber_name"] for item in body["data"]}) == tickets
    assert counter.count == LIST_PAGE_STATEMENTS, counter.statements


@pytest.mark.parametrize("replies", [0, 1, 20])
def test_fetch_ticket_costs_a_fixed_number_of_statements(
    send, world, make_user, make_reply, count_queries, replies
):
    """Each reply has its own author, so a lazy load of user_name per reply would show."""
    for n in range(replies):
        make_reply(world.ticket_id, make_user(isp_id=1, branch_id=1, name=f"Author {n}"))

    with count_queries() as counter:
        response = send(FETCH, world)

    body = assert_success(response, 200)
    assert len({reply["user_name"] for reply in body["data"]["replies"]}) == replies
    assert counter.count == FETCH_TICKET_STATEMENTS, counter.statements


def test_the_webhook_worker_says_once_that_the_database_is_unreachable_and_keeps_trying(
    make_app, caplog
):
    app = make_app(SQLALCHEMY_DATABASE_URI=UNREACHABLE_DATABASE)
    rounds, logger = [], "tickets_service.webhooks.worker"
    with session(app), caplog.at_level("WARNING", logger=logger):
        attempts = run_worker(
            idle_seconds=0, should_stop=lambda: rounds.append(1) or len(rounds) > 3
        )

    assert attempts == 0 and len(rounds) == 4  # three tries, then told to stop
    warnings = [r.getMessage() for r in caplog.records if r.name == logger]
    assert len(warnings) == 1 and "database unavailable" in warnings[0]
