"""Issue 3, point 4: connections are checked before use, settings reach PostgreSQL."""

import pytest
from sqlalchemy import create_engine, text

from tickets_service.config import normalize_database_url
from tickets_service.extensions import db

pytestmark = pytest.mark.postgres


@pytest.fixture
def postgres_url(db_url):
    if not db_url.startswith("postgres"):
        pytest.skip("needs TEST_DATABASE_URL pointing at PostgreSQL")
    return normalize_database_url(db_url)


def terminate_other_connections(url: str) -> int:
    """Kill every other session on the database, as a server restart or failover would."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            killed = connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
    finally:
        engine.dispose()
    return killed


def test_requests_survive_killed_connections(postgres_url, client, admin, make_ticket):
    ticket_id = make_ticket(admin)
    first = client.get(f"/api/v1/tickets/{ticket_id}", headers=admin.headers)
    assert first.status_code == 200

    assert terminate_other_connections(postgres_url) >= 1

    second = client.get(f"/api/v1/tickets/{ticket_id}", headers=admin.headers)
    assert second.status_code == 200
    assert second.json["data"]["id"] == ticket_id


def test_statement_timeout_comes_from_the_environment(postgres_url, make_app):
    app = make_app(DB_STATEMENT_TIMEOUT_MS=1234)
    with app.app_context():
        assert db.session.execute(text("SHOW statement_timeout")).scalar_one() == "1234ms"
        db.session.remove()


def test_pool_size_comes_from_the_environment(postgres_url, make_app):
    app = make_app(DB_POOL_SIZE=3)
    with app.app_context():
        assert db.engine.pool.size() == 3
