"""Fixtures: the app on a migrated database (SQLite, or PostgreSQL via TEST_DATABASE_URL), a clean
database for every test, users of two ISPs with their tokens, helpers that read the database
back, and the endpoint catalogue that the input, validation and tenancy matrices run over."""

import json
import os
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import flask_migrate
import pytest
from sqlalchemy import event, inspect, select, text
from sqlalchemy.exc import OperationalError
from werkzeug.security import generate_password_hash

from tickets_service import create_app
from tickets_service.extensions import db
from tickets_service.models import RevokedToken, Subscriber, Ticket, TicketReply, User, utcnow
from tickets_service.tokens import issue_token  # the only import of it: tokens come from here

PASSWORD = "correct horse battery staple"
JWT_SECRET = "test-secret-that-is-long-enough-for-hs256!"
SCOPE = ("isp_id", "branch_id", "user_id")


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
        try:
            empty_tables()
        except OperationalError:  # a test killed the pool's connections (a restart drill)
            db.engine.dispose()
            empty_tables()


def empty_tables() -> None:
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


# --- Users and their tokens -----------------------------------------------------------------


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


def as_utc(value: datetime) -> datetime:
    """A database timestamp as aware UTC (SQLite hands back naive UTC values)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def without(row: dict, *keys: str) -> dict:
    return {key: value for key, value in row.items() if key not in keys}


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
def snapshot(app):
    """snapshot() -> the content of every table; compare two to prove nothing changed.

    Login attempts are left out: a refused login is counted, which is the limit's purpose."""

    def take() -> dict:
        with app.app_context(), db.engine.connect() as connection:
            return {
                table.name: [
                    dict(row._mapping)
                    for row in connection.execute(
                        select(table).order_by(*table.primary_key.columns)
                    )
                ]
                for table in db.metadata.sorted_tables
                if table.name != "login_attempts"
            }

    return take


@pytest.fixture
def assert_refused(snapshot):
    """assert_refused(request, status, field=None): calling `request()` gets the error envelope
    with this status (its `errors` naming only `field`, when given) and leaves every table as it
    was; returns the response."""

    def check(request: Callable, status: int, field: str | None = None):
        before = snapshot()
        response = request()
        body = assert_error(response, status, field)
        if field is not None:
            assert set(body["errors"]) == {field}
        assert snapshot() == before
        return response

    return check


@pytest.fixture
def count_queries(app):
    """with count_queries() as counter: ...; counter.count is the SQL statements executed
    (transaction control aside: SQLite's explicit BEGIN, which psycopg sends implicitly)."""

    @contextmanager
    def counting():
        class Counter:
            count = 0
            statements: list

        counter = Counter()
        counter.statements = []

        def before_execute(_conn, _cursor, statement, *_args):
            if statement.startswith("BEGIN"):
                return
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


# --- The endpoint catalogue -------------------------------------------------------------------
# Every operation of the API, once. The input, validation, authentication and tenancy matrices
# are generated from it: a new endpoint is one more entry in ENDPOINTS.


@dataclass(frozen=True)
class World:
    """Who calls, the live ticket a per-ticket path names, and a subscriber a body may link."""

    caller: Account
    ticket_id: int
    subscriber_id: int | None = None
    scope: dict | None = None  # the isp/branch/user the request claims; the caller's by default

    @property
    def claimed(self) -> dict:
        return scope_of(self.caller) if self.scope is None else self.scope


@dataclass(frozen=True)
class Outcome:
    """What an accepted request left: the body's data and the database to read back."""

    world: World
    sent: dict
    data: object
    fetch: Callable
    rows: Callable


@dataclass(frozen=True, eq=False)
class Endpoint:
    """One operation of the API: how a client calls it in a World (path, method, body, query),
    what a success answers and does (`effect`), and the rules its fields and parameters follow.
    Every attribute left at its default simply adds no case to the matrices."""

    name: str
    method: str
    path: str  # "{id}" is a ticket id
    effect: Callable[[Outcome], None]  # asserts what a success did
    body: Callable[[World], dict] | None = None  # a body it accepts
    query: Callable[[World], dict] | None = None  # the query string a client sends
    status: int = 200
    message: str | None = None
    integer_fields: tuple[str, ...] = ()
    string_fields: tuple[str, ...] = ()
    nullable_fields: tuple[str, ...] = ()
    required_fields: tuple[str, ...] = ()
    secret_fields: tuple[str, ...] = ()  # taken as typed: not trimmed, never stored
    codes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)  # body or query code tables
    max_lengths: Mapping[str, int] = field(default_factory=dict)
    # Fields a client may not send: unknown names and columns the server owns.
    refused_fields: Mapping[str, object] = field(default_factory=dict)
    query_integers: tuple[str, ...] = ()  # integer query parameters it validates
    authenticated: bool = True
    admin_only: bool = False
    body_limit: int | None = None  # a route's own body limit, below MAX_CONTENT_LENGTH

    def within_limit(self, data: bytes, limit: int, status: int) -> int:
        """`status`, or 413 when `data` is over this route's body limit (or `limit`)."""
        return 413 if len(data) > min(limit, self.body_limit or limit) else status

    def __str__(self) -> str:
        return self.name

    @property
    def per_ticket(self) -> bool:
        return "{id}" in self.path

    @property
    def scoped(self) -> bool:
        """It takes isp_id / branch_id / user_id, which must agree with the token."""
        return "isp_id" in self.integer_fields + self.query_integers


def assert_stored(row: dict, sent: dict) -> None:
    """Every value sent that the row has a column for is stored as sent."""
    shared = sent.keys() & row.keys()
    assert shared
    assert {name: row[name] for name in shared} == {name: sent[name] for name in shared}


def _listed(o: Outcome) -> None:
    assert [item["id"] for item in o.data] == [o.world.ticket_id]


def _fetched(o: Outcome) -> None:
    assert o.data["id"] == o.world.ticket_id


def _created(o: Outcome) -> None:
    row = o.fetch(Ticket, o.data["id"])
    assert_stored(row, o.sent)
    assert (row["created_by_id"], row["status"], row["deleted_at"]) == (o.world.caller.id, 0, None)


def _changed(o: Outcome) -> None:
    assert_stored(o.fetch(Ticket, o.world.ticket_id), o.sent)


def _deleted(o: Outcome) -> None:
    assert o.fetch(Ticket, o.world.ticket_id)["deleted_at"] is not None


def _replied(o: Outcome) -> None:
    [reply] = o.rows(TicketReply)
    assert_stored(reply, o.sent)
    assert (reply["ticket_id"], reply["user_id"]) == (o.world.ticket_id, o.world.caller.id)


def _logged_in(o: Outcome) -> None:
    assert o.data["access_token"]
    assert o.data["user"]["id"] == o.world.caller.id


def _me(o: Outcome) -> None:
    assert o.data["id"] == o.world.caller.id


def _logged_out(o: Outcome) -> None:
    [revoked] = o.rows(RevokedToken)
    assert revoked["user_id"] == o.world.caller.id


PRIORITIES = (1, 2, 3)
STATUSES = (0, 1, 2, 3)
TICKET_FIELDS = {
    "integer_fields": (*SCOPE, "subscriber_id", "priority"),
    "string_fields": ("title", "description"),
    "nullable_fields": ("subscriber_id",),
    "codes": {"priority": PRIORITIES},
    "max_lengths": {"title": 255, "description": 10_000},
    "query_integers": SCOPE,
}

LIST = Endpoint(
    "list",
    "GET",
    "/api/v1/tickets",
    _listed,
    query=lambda w: w.claimed,
    codes={"status": STATUSES, "priority": PRIORITIES},
    query_integers=(*SCOPE, "status", "priority", "page", "per_page"),
)
FETCH = Endpoint(
    "fetch",
    "GET",
    "/api/v1/tickets/{id}",
    _fetched,
    query=lambda w: w.claimed,
    query_integers=SCOPE,
)
CREATE = Endpoint(
    "create",
    "POST",
    "/api/v1/tickets",
    _created,
    body=lambda w: {
        **w.claimed,
        "subscriber_id": w.subscriber_id,
        "title": "Connection Issue",
        "description": "Cannot connect to internet",
        "priority": 2,
    },
    status=201,
    message="Ticket created successfully",
    required_fields=("title", "description", "priority"),
    refused_fields={
        "id": 999,
        "status": 3,
        "created_by_id": 1,
        "created_by": 1,
        "created_at": "2000-01-01 00:00:00",
        "deleted_at": "2000-01-01 00:00:00",
        "subscriber_name": "Someone",
        "replies": [],
        "__proto__": {"admin": True},
        "": 1,
        "Title": "case variant",
    },
    **TICKET_FIELDS,
)
UPDATE = Endpoint(
    "update",
    "PUT",
    "/api/v1/tickets/{id}",
    _changed,
    body=lambda w: {
        **w.claimed,
        "subscriber_id": w.subscriber_id,
        "title": "Updated Title",
        "description": "Still cannot connect",
        "priority": 3,
    },
    message="Ticket updated successfully",
    refused_fields={
        "id": 999,
        "status": 3,
        "created_by_id": 1,
        "updated_at": "2000-01-01 00:00:00",
        "deleted_at": "2000-01-01 00:00:00",
    },
    **TICKET_FIELDS,
)
DELETE = Endpoint(
    "delete",
    "DELETE",
    "/api/v1/tickets/{id}",
    _deleted,
    query=lambda w: w.claimed,
    message="Ticket deleted successfully",
    query_integers=SCOPE,
    admin_only=True,
)
REPLY = Endpoint(
    "reply",
    "POST",
    "/api/v1/tickets/{id}/reply",
    _replied,
    body=lambda w: {**w.claimed, "message": "We are looking into this issue."},
    status=201,
    message="Reply added successfully",
    integer_fields=SCOPE,
    string_fields=("message",),
    required_fields=("message",),
    max_lengths={"message": 10_000},
    refused_fields={
        "user_name": "Someone else",
        "ticket_id": 1,
        "created_at": "2000-01-01 00:00:00",
    },
    query_integers=SCOPE,
)
STATUS = Endpoint(
    "status",
    "PUT",
    "/api/v1/tickets/{id}/status",
    _changed,
    body=lambda w: {**w.claimed, "status": 2},
    message="Ticket status updated successfully",
    integer_fields=(*SCOPE, "status"),
    required_fields=("status",),
    codes={"status": STATUSES},
    refused_fields={"priority": 3, "title": "x", "deleted_at": None},
    query_integers=SCOPE,
)
LOGIN = Endpoint(
    "login",
    "POST",
    "/api/v1/auth/login",
    _logged_in,
    body=lambda w: {"email": w.caller.email, "password": PASSWORD},
    string_fields=("email", "password"),
    required_fields=("email", "password"),
    secret_fields=("password",),
    max_lengths={"email": 255, "password": 1024},
    refused_fields={"role": "admin", "isp_id": 2, "remember": True},
    authenticated=False,
    body_limit=4096,
)
ME = Endpoint("me", "GET", "/api/v1/auth/me", _me)
LOGOUT = Endpoint(
    "logout", "POST", "/api/v1/auth/logout", _logged_out, message="Logged out successfully"
)

ENDPOINTS = (LIST, FETCH, CREATE, UPDATE, DELETE, REPLY, STATUS, LOGIN, ME, LOGOUT)
WITH_BODY = tuple(endpoint for endpoint in ENDPOINTS if endpoint.body)
PER_TICKET = tuple(endpoint for endpoint in ENDPOINTS if endpoint.per_ticket)
SCOPED = tuple(endpoint for endpoint in ENDPOINTS if endpoint.scoped)


def encode(body: dict) -> bytes:
    """The body as UTF-8 JSON text, as most clients send it."""
    return json.dumps(body, ensure_ascii=False).encode()


@pytest.fixture
def make_world(make_subscriber, make_ticket):
    """make_world(caller, branch_id=None, author=None, scope=None) -> a World whose ticket,
    created by `author` (the caller by default), is linked to a subscriber of its branch."""

    def build(caller: Account, branch_id=None, author=None, scope=None) -> World:
        branch_id = branch_id or caller.branch_id
        subscriber_id = make_subscriber(isp_id=caller.isp_id, branch_id=branch_id)
        ticket_id = make_ticket(author or caller, branch_id=branch_id, subscriber_id=subscriber_id)
        return World(caller, ticket_id, subscriber_id, scope)

    return build


@pytest.fixture
def world(admin, make_world) -> World:
    """ISP 1's admin, a subscriber of branch 1 and a live ticket linked to it."""
    return make_world(admin)


@pytest.fixture
def send(client):
    """send(endpoint, world, data=None, **options): the request a client of `endpoint` makes.

    `data` replaces the valid body (a dict is sent as JSON, bytes as they are), `ticket_id` the
    world's ticket, `query_string` the endpoint's query; `anonymous=True` sends no token and
    `to` uses another test client; other options go to the test client."""

    def request(endpoint: Endpoint, world: World, data=None, **options):
        to = options.pop("to", client)
        ticket_id = options.pop("ticket_id", world.ticket_id)
        headers = {"Accept": "application/json"}
        if endpoint.authenticated and not options.pop("anonymous", False):
            headers.update(world.caller.headers)
        headers.update(options.pop("headers", {}))
        streamed = "input_stream" in options
        if data is None and endpoint.body and not streamed:
            data = endpoint.body(world)
        if isinstance(data, dict):
            data = encode(data)
        if data is not None or streamed:
            options.setdefault("content_type", "application/json")
        if endpoint.query and "query_string" not in options:
            options["query_string"] = endpoint.query(world)
        path = endpoint.path.format(id=ticket_id)
        return to.open(path, method=endpoint.method, data=data, headers=headers, **options)

    return request


@pytest.fixture
def assert_took_effect(fetch, rows):
    """assert_took_effect(endpoint, world, response, sent=None): the success envelope, and the
    effect the endpoint promises (read back from the database); returns the body."""

    def check(endpoint: Endpoint, world: World, response, sent: dict | None = None) -> dict:
        body = assert_success(response, endpoint.status, endpoint.message)
        if sent is None:
            sent = endpoint.body(world) if endpoint.body else {}
        endpoint.effect(Outcome(world, sent, body.get("data"), fetch, rows))
        return body

    return check


def cases(table: dict) -> list:
    """pytest.param rows from {label: value}, with ids from the labels."""
    return [pytest.param(value, id=label) for label, value in table.items()]


def matrix(attribute: str, values, endpoints=WITH_BODY, skip=lambda *_: False) -> list:
    """pytest.param(endpoint, name, value) rows: every endpoint, every name in its `attribute`
    (names, or a mapping keyed by them), every value of the {label: value} table `values` (or
    of values(endpoint, name)), except where skip(endpoint, name, value)."""
    return [
        pytest.param(endpoint, name, value, id=f"{endpoint}-{name}-{label}")
        for endpoint in endpoints
        for name in getattr(endpoint, attribute)
        for label, value in (values(endpoint, name) if callable(values) else values).items()
        if not skip(endpoint, name, value)
    ]
