"""Fixtures: the app on a migrated database (SQLite, or PostgreSQL via TEST_DATABASE_URL),
a clean database for every test, users of two ISPs with their auth headers, and helpers
that read the database back so tests can assert what a request changed."""

import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import flask_migrate
import pytest
from sqlalchemy import event, inspect, select, text
from werkzeug.security import generate_password_hash

from tickets_service import create_app
from tickets_service.extensions import db
from tickets_service.models import Subscriber, Ticket, TicketReply, User, utcnow
from tickets_service.tokens import issue_token

PASSWORD = "correct horse battery staple"
JWT_SECRET = "test-secret-that-is-long-enough-for-hs256!"


def database_url(tmp_path_factory) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    return "sqlite:///" + str(tmp_path_factory.mktemp("db") / "tickets.db")


def test_config(url: str, **overrides) -> dict:
    return {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": url,
        "JWT_SECRET_KEY": JWT_SECRET,
        **overrides,
    }


def reset_schema() -> None:
    """Drop whatever a previous run left, then build the schema through the migrations."""
    with db.engine.begin() as connection:
        db.metadata.drop_all(connection)
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    flask_migrate.upgrade()


@pytest.fixture(scope="session")
def db_url(tmp_path_factory) -> str:
    return database_url(tmp_path_factory)


@pytest.fixture(scope="session")
def app(db_url):
    app = create_app(test_config(db_url))
    with app.app_context():
        reset_schema()
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture(autouse=True)
def clean_database(request):
    """Every test starts from empty tables (only for tests that use the app)."""
    yield
    if "app" not in request.fixturenames:
        return
    app = request.getfixturevalue("app")
    with app.app_context():
        db.session.remove()
        with db.engine.begin() as connection:
            for table in reversed(db.metadata.sorted_tables):
                connection.execute(table.delete())


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def make_app(db_url):
    """A second app on the same database with other settings (e.g. a short token life)."""
    created = []

    def factory(**overrides):
        other = create_app(test_config(db_url, **overrides))
        created.append(other)
        return other

    yield factory
    for other in created:
        with other.app_context():
            db.engine.dispose()


# --- Users and auth -------------------------------------------------------------------------


@dataclass
class Account:
    id: int
    isp_id: int
    branch_id: int
    role: str
    name: str
    email: str
    headers: dict
    token: str


@pytest.fixture(scope="session")
def password_hash() -> str:
    # Hash once: scrypt is deliberately slow, and every test needs users.
    return generate_password_hash(PASSWORD)


@pytest.fixture
def make_user(app, password_hash):
    """Insert a user and return it with a valid bearer token."""
    counter = iter(range(1, 10_000))

    def factory(isp_id=1, branch_id=1, role="staff", name=None, email=None, active=True):
        n = next(counter)
        with app.app_context():
            user = User(
                isp_id=isp_id,
                branch_id=branch_id,
                role=role,
                name=name or f"{role.title()} {isp_id}-{branch_id}-{n}",
                email=email or f"{role}{n}.isp{isp_id}.b{branch_id}@example.test",
                password_hash=password_hash,
                is_active=active,
            )
            db.session.add(user)
            db.session.commit()
            token = issue_token(user)["access_token"]
            account = Account(
                id=user.id,
                isp_id=user.isp_id,
                branch_id=user.branch_id,
                role=user.role,
                name=user.name,
                email=user.email,
                headers={"Authorization": f"Bearer {token}"},
                token=token,
            )
            db.session.remove()
        return account

    return factory


@pytest.fixture
def admin(make_user):
    """Admin of ISP 1 (home branch 1)."""
    return make_user(isp_id=1, branch_id=1, role="admin", name="Admin")


@pytest.fixture
def staff(make_user):
    """Staff of ISP 1, branch 1."""
    return make_user(isp_id=1, branch_id=1, role="staff", name="Staff One")


@pytest.fixture
def staff_branch2(make_user):
    """Staff of ISP 1, branch 2."""
    return make_user(isp_id=1, branch_id=2, role="staff", name="Staff Two")


@pytest.fixture
def other_admin(make_user):
    """Admin of ISP 2: must never see ISP 1's data."""
    return make_user(isp_id=2, branch_id=1, role="admin", name="Other Admin")


@pytest.fixture
def other_staff(make_user):
    """Staff of ISP 2, branch 1."""
    return make_user(isp_id=2, branch_id=1, role="staff", name="Other Staff")


def scope_of(account: Account) -> dict:
    """The isp_id / branch_id / user_id a client sends along with its requests."""
    return {"isp_id": account.isp_id, "branch_id": account.branch_id, "user_id": account.id}


# --- The envelope -----------------------------------------------------------------------------

ENVELOPE_KEYS = {"success", "message", "data", "meta"}
ERROR_KEYS = {"success", "message", "errors"}
_LEAKS = ("traceback", "sqlalchemy", "psycopg", "sqlite", "<html")


def assert_success(response, status: int, message: str | None = None) -> dict:
    """The success envelope with this status (and message); returns the body."""
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["success"] is True
    assert set(body) <= ENVELOPE_KEYS
    if message is not None:
        assert body["message"] == message
    return body


def assert_error(response, status: int, field: str | None = None) -> dict:
    """The error envelope with this status: a message, per-field string lists (required on
    422, naming `field` when given), and no trace, SQL or HTML; returns the body."""
    text = response.get_data(as_text=True)
    assert response.status_code == status, f"{response.status_code}: {text[:300]}"
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) <= ERROR_KEYS
    assert body["success"] is False
    assert isinstance(body["message"], str)
    assert body["message"].strip()
    errors = body.get("errors", {})
    assert isinstance(errors, dict)
    for name, messages in errors.items():
        assert isinstance(name, str)
        assert isinstance(messages, list)
        assert messages
        assert all(isinstance(message, str) for message in messages)
    if status == 422:
        assert errors
    if field is not None:
        assert field in errors, errors
    for leak in _LEAKS:
        assert leak not in text.lower()
    return body


# --- Data and database read-back ------------------------------------------------------------


@pytest.fixture
def make_subscriber(app):
    def factory(isp_id=1, branch_id=1, name="John Doe", phone=None, email=None) -> int:
        with app.app_context():
            subscriber = Subscriber(
                isp_id=isp_id, branch_id=branch_id, name=name, phone=phone, email=email
            )
            db.session.add(subscriber)
            db.session.commit()
            subscriber_id = subscriber.id
            db.session.remove()
        return subscriber_id

    return factory


@pytest.fixture
def make_ticket(app):
    """Insert a ticket created by `author`; `age` pushes created_at into the past."""

    def factory(author: Account, branch_id=None, age=timedelta(0), **fields) -> int:
        values = {
            "title": "Connection Issue",
            "description": "Cannot connect to internet",
            "priority": 2,
            "status": 0,
        }
        values.update(fields)
        with app.app_context():
            created = utcnow() - age
            ticket = Ticket(
                isp_id=author.isp_id,
                branch_id=branch_id or author.branch_id,
                created_by_id=author.id,
                created_at=created,
                updated_at=created,
                **values,
            )
            db.session.add(ticket)
            db.session.commit()
            ticket_id = ticket.id
            db.session.remove()
        return ticket_id

    return factory


@pytest.fixture
def make_reply(app):
    def factory(ticket_id: int, author: Account, message="We are looking into this.", age=None):
        with app.app_context():
            reply = TicketReply(ticket_id=ticket_id, user_id=author.id, message=message)
            if age is not None:
                reply.created_at = utcnow() - age
            db.session.add(reply)
            db.session.commit()
            reply_id = reply.id
            db.session.remove()
        return reply_id

    return factory


def _row(obj) -> dict:
    return {column.key: getattr(obj, column.key) for column in inspect(obj).mapper.column_attrs}


@pytest.fixture
def fetch(app):
    """fetch(Model, id) -> the row as a dict of its columns, or None."""

    def reader(model, object_id):
        with app.app_context():
            obj = db.session.get(model, object_id)
            row = _row(obj) if obj is not None else None
            db.session.remove()
        return row

    return reader


@pytest.fixture
def rows(app):
    """rows(Model) -> every row of the table, as dicts ordered by id."""

    def reader(model):
        with app.app_context():
            key = inspect(model).primary_key[0]
            result = [_row(obj) for obj in db.session.scalars(select(model).order_by(key))]
            db.session.remove()
        return result

    return reader


@pytest.fixture
def snapshot(rows):
    """snapshot() -> the content of every table; compare two to prove nothing changed."""

    def take():
        models = (User, Subscriber, Ticket, TicketReply)
        return {model.__tablename__: rows(model) for model in models}

    return take


@pytest.fixture
def count_queries(app):
    """with count_queries() as counter: ...; counter.count is the SQL statements executed."""

    @contextmanager
    def counting():
        class Counter:
            count = 0
            statements: list

        counter = Counter()
        counter.statements = []

        def before_execute(_conn, _cursor, statement, *_args):
            counter.count += 1
            counter.statements.append(statement)

        with app.app_context():
            engine = db.engine
        event.listen(engine, "before_cursor_execute", before_execute)
        try:
            yield counter
        finally:
            event.remove(engine, "before_cursor_execute", before_execute)

    return counting
