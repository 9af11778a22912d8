"""Fixtures: the app on a migrated database (SQLite, or PostgreSQL via TEST_DATABASE_URL), a clean
database for every test, users of two ISPs with their tokens, data made directly in the
database and read back from it, and the worlds the endpoint catalogue's matrices run in. What
the tests share besides fixtures is in tests/support/."""

import os
import secrets
from collections.abc import Callable
from contextlib import contextmanager
from datetime import timedelta
from functools import partial

import flask_migrate
import pytest
from sqlalchemy import event, select, text, update
from sqlalchemy.exc import OperationalError
from support.catalogue import PLACEHOLDERS, Endpoint, Outcome, World
from support.client import PASSWORD, Account, KeyHolder, assert_error, assert_success, encode
from support.database import app_config, read_rows, row_of, saved, session
from support.urls import API_KEYS, ME
from werkzeug.security import generate_password_hash

from tickets_service import create_app
from tickets_service.desk import ensure_catalogue
from tickets_service.extensions import db
from tickets_service.models import (
    ApiKey,
    Attachment,
    CannedReply,
    Incident,
    IncidentSuggestion,
    NetworkObject,
    SlaPolicy,
    Subscriber,
    SubscriberLink,
    Ticket,
    TicketHistory,
    TicketReply,
    TicketType,
    User,
    WebhookEndpoint,
    utcnow,
)
from tickets_service.storage import LocalStore

# The only import of issue_token: tests get their tokens from here.
from tickets_service.tokens import Caller, issue_token
from tickets_service.webhooks.events import new_delivery


def database_url(tmp_path_factory) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    return "sqlite:///" + str(tmp_path_factory.mktemp("db") / "tickets.db")


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
def app(db_url, tmp_path_factory):
    # Attachments' bytes in a folder of the run, never the checkout's instance folder.
    attachments = tmp_path_factory.mktemp("attachments")
    app = create_app(app_config(db_url, ATTACHMENT_DIR=str(attachments)))
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
        other = create_app(app_config(db_url, **overrides))
        created.append(other)
        return other

    yield factory
    for other in created:
        with other.app_context():
            db.engine.dispose()


# --- Users and their tokens -----------------------------------------------------------------


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
        user = User(
            isp_id=isp_id,
            branch_id=branch_id,
            role=role,
            name=name or f"{role.title()} {isp_id}-{branch_id}-{n}",
            email=email or f"{role}{n}.isp{isp_id}.b{branch_id}@example.test",
            password_hash=password_hash,
            is_active=active,
        )
        with session(app) as own:
            own.add(user)
            own.commit()
            token = issue_token(user)["access_token"]
            columns = {name: getattr(user, name) for name in Caller.__dataclass_fields__}
        return Account(**columns, headers={"Authorization": f"Bearer {token}"}, token=token)

    return factory


# The accounts tests act as, by fixture name: ISP, branch, role and name. ISP 2's accounts must
# never see ISP 1's data.
ACCOUNTS = {
    "admin": (1, 1, "admin", "Admin"),
    "staff": (1, 1, "staff", "Staff One"),
    "staff_branch2": (1, 2, "staff", "Staff Two"),
    "other_admin": (2, 1, "admin", "Other Admin"),
    "other_staff": (2, 1, "staff", "Other Staff"),
}


def account_fixture(isp_id: int, branch_id: int, role: str, name: str):
    def account(make_user):
        return make_user(isp_id=isp_id, branch_id=branch_id, role=role, name=name)

    return account


for _name, _columns in ACCOUNTS.items():
    globals()[_name] = pytest.fixture(account_fixture(*_columns), name=_name)


@pytest.fixture
def make_key(client):
    """make_key(admin, scopes, **fields) -> a KeyHolder for a key the admin made through the
    API, used once already (unless `used` is false): the first use of a key is written down
    (last_used_at, an audit entry), so a refusal that follows changes nothing."""

    def factory(
        admin: Account, scopes=("tickets:read",), name="Platform sync", used=True, **fields
    ):
        body = {"name": name, "scopes": list(scopes), **fields}
        response = client.post(API_KEYS, json=body, headers=admin.headers)
        data = assert_success(response, 201, "API key created successfully")["data"]
        headers = {"Authorization": f"Bearer {data['key']}"}
        if used:
            assert_error(client.get(ME, headers=headers), 403)  # a person's: noted all the same
        return KeyHolder(data["id"], data["name"], data["key"], headers)

    return factory


# --- Data and database read-back ------------------------------------------------------------


@pytest.fixture
def make_subscriber(app):
    def factory(isp_id=1, branch_id=1, name="John Doe", phone=None, email=None) -> int:
        columns = dict(isp_id=isp_id, branch_id=branch_id, name=name, phone=phone, email=email)
        return saved(app, Subscriber(**columns))

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
        created = utcnow() - age
        ticket = Ticket(
            isp_id=author.isp_id,
            branch_id=branch_id or author.branch_id,
            created_by_id=author.id,
            created_at=created,
            updated_at=created,
            **values,
        )
        return saved(app, ticket)

    return factory


@pytest.fixture
def make_reply(app):
    def factory(ticket_id: int, author: Account, message="We are looking into this.", age=None):
        reply = TicketReply(ticket_id=ticket_id, user_id=author.id, message=message)
        if age is not None:
            reply.created_at = utcnow() - age
        return saved(app, reply)

    return factory


@pytest.fixture
def fetch(app):
    """fetch(Model, id) -> the row as a dict of its columns, or None."""

    def reader(model, object_id):
        with session(app) as own:
            obj = own.get(model, object_id)
            return row_of(obj) if obj is not None else None

    return reader


@pytest.fixture
def rows(app):
    """rows(Model) -> every row of the table, as dicts ordered by its primary key."""
    return partial(read_rows, app)


@pytest.fixture
def snapshot(app):
    """snapshot() -> the content of every table; compare two to prove nothing changed.

    Login attempts, and failed logins in the audit trail, are left out: a refused login is
    counted, which is the limit's purpose, and recorded, which is the trail's."""

    def take() -> dict:
        with app.app_context(), db.engine.connect() as connection:
            return {
                table.name: [
                    dict(row._mapping)
                    for row in connection.execute(
                        select(table).order_by(*table.primary_key.columns)
                    )
                    if not (table.name == "audit_entries" and row.action == "login_failed")
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


@pytest.fixture
def make_world(app, make_subscriber, make_ticket, make_user, request):
    """make_world(caller, branch_id=None, author=None, scope=None) -> a World whose ticket,
    created by `author` (the caller by default), is linked to a subscriber of its branch, with
    the other objects a path may name (a deleted ticket, a colleague, a webhook and one of its
    deliveries, an API key, a device of its ISP's network under a site) in its ISP and branch."""

    callspec = getattr(request.node, "callspec", None)  # the test's parameters, if any
    endpoint = callspec.params.get("endpoint") if callspec else None
    endpoint = endpoint if isinstance(endpoint, Endpoint) else None

    def build(caller: Account, branch_id=None, author=None, scope=None) -> World:
        branch_id = branch_id or caller.branch_id
        author = author or caller
        subscriber_id = make_subscriber(isp_id=caller.isp_id, branch_id=branch_id)
        ticket_id = make_ticket(author, branch_id=branch_id, subscriber_id=subscriber_id)

        def make(kind: str):
            if kind == "deleted_ticket":
                return make_ticket(author, branch_id=branch_id, deleted_at=utcnow())
            if kind == "user":
                return make_user(isp_id=caller.isp_id, branch_id=branch_id).id
            if kind == "external_id":
                return "crm-1"
            if kind == "network_kind":
                return "device"
            if kind == "network_object":
                with session(app) as own:
                    parent = None
                    for made_kind, external_id in (("site", "site-1"), ("device", "dev-1")):
                        obj = NetworkObject(
                            isp_id=caller.isp_id,
                            kind=made_kind,
                            external_id=external_id,
                            name=f"World's {made_kind}",
                            branch_id=branch_id,
                            parent_id=parent.id if parent else None,
                            path="",
                            depth=parent.depth + 1 if parent else 1,
                        )
                        own.add(obj)
                        own.flush()
                        obj.path = f"{parent.path if parent else '/'}{obj.id}/"
                        parent = obj
                    own.commit()
                return "dev-1"
            if kind == "incident":
                with session(app) as own:
                    incident = Ticket(
                        isp_id=caller.isp_id,
                        branch_id=branch_id,
                        created_by_id=(author or caller).id,
                        kind="incident",
                        title="Fibre cut",
                        description="OLT unreachable",
                        priority=3,
                        status=0,
                        created_at=utcnow() - timedelta(hours=1),  # before the world's ticket
                    )
                    own.add(incident)
                    own.flush()
                    # The world's ticket is its child (DELETE .../parent has one to take).
                    own.execute(
                        update(Ticket).where(Ticket.id == ticket_id).values(parent_id=incident.id)
                    )
                    own.add(
                        Incident(
                            ticket_id=incident.id,
                            isp_id=caller.isp_id,
                            starts_at=utcnow(),
                            public_message="Back by 18:00.",
                        )
                    )
                    own.commit()
                    return incident.id
            if kind == "suggestion":
                world.target("network_object")
                with session(app) as own:
                    obj = own.scalar(
                        select(NetworkObject).where(
                            NetworkObject.isp_id == caller.isp_id,
                            NetworkObject.external_id == "dev-1",
                        )
                    )
                    suggestion = IncidentSuggestion(
                        isp_id=caller.isp_id,
                        object_id=obj.id,
                        ticket_ids=[ticket_id],
                        first_at=utcnow(),
                        last_at=utcnow(),
                        status="open",
                    )
                    own.add(suggestion)
                    own.commit()
                    return suggestion.id
            if kind == "ticket_type":
                with app.app_context():  # the ISP's catalogue first, as its first use makes it
                    ensure_catalogue(caller.isp_id)
                    db.session.commit()
                kind_row = TicketType(
                    isp_id=caller.isp_id, key="world-type", name="World's type", default_priority=2
                )
                return saved(app, kind_row)
            if kind in ("sla_type", "sla_priority"):
                world.target("ticket_type")
                return "world-type" if kind == "sla_type" else 3
            if kind == "sla_policy":
                key = (world.target("sla_type"), world.target("sla_priority"))
                with session(app) as own:
                    own.add(
                        SlaPolicy(
                            isp_id=caller.isp_id,
                            type=key[0],
                            priority=key[1],
                            first_response_minutes=30,
                            resolve_minutes=240,
                        )
                    )
                    own.commit()
                return key
            if kind == "canned_reply":
                canned = CannedReply(
                    isp_id=caller.isp_id,
                    scope="branch",
                    branch_id=branch_id,
                    title="World's answer",
                    body="Hello {{ subscriber.name }}.",
                    created_by_id=author.id,
                )
                return saved(app, canned)
            if kind == "attachment":  # a staff's file on the world's ticket, on no reply yet
                return saved(
                    app,
                    Attachment(
                        isp_id=caller.isp_id,
                        ticket_id=ticket_id,
                        name="router.png",
                        size=8,
                        content_type="image/png",
                        sha256="0" * 64,
                        uploaded_by_id=author.id,
                    ),
                )
            if kind == "subscriber_link":
                link = SubscriberLink(
                    isp_id=caller.isp_id,
                    ticket_id=ticket_id,
                    token_hash=secrets.token_hex(32),
                    expires_at=utcnow() + timedelta(days=1),
                    created_by_id=author.id,
                )
                return saved(app, link)
            if kind == "api_key":
                key = ApiKey(
                    isp_id=caller.isp_id,
                    name="World's key",
                    prefix=secrets.token_hex(6),
                    secret_hash="0" * 64,
                    scopes=["tickets:read"],
                    created_by_id=author.id,
                )
                return saved(app, key)
            with session(app) as own:
                endpoint = WebhookEndpoint(
                    isp_id=caller.isp_id,
                    url="https://93.184.216.34/hook",
                    events=["ticket.created"],
                    secret="whsec_world",
                    created_by_id=author.id,
                )
                own.add(endpoint)
                own.flush()
                made = endpoint.id
                if kind == "delivery":
                    entry = own.scalar(
                        select(TicketHistory.id).where(TicketHistory.ticket_id == ticket_id)
                    )
                    delivery = new_delivery(endpoint.id, entry, "ticket.created", utcnow())
                    own.add(delivery)
                    made = delivery.delivery_id
                own.commit()
            return made

        world = World(caller, ticket_id, subscriber_id, scope, make)
        # Made now, so that a snapshot taken before a request holds them: what the test's
        # endpoint names (its path, its needs, what its body and query refer to), or, for a
        # test of no one endpoint, every kind.
        if endpoint is None:
            for kind in PLACEHOLDERS:
                world.target(kind)
        else:
            for kind in (*endpoint.placeholders, *endpoint.needs):
                world.target(kind)
            for part in (endpoint.body, endpoint.query):
                if part is not None:
                    part(world)
        return world

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
        ticket_id = options.pop("ticket_id", None)
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
        path = world.path_of(endpoint, ticket=ticket_id)
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


@pytest.fixture
def attachment_dir(app, tmp_path, monkeypatch):
    """The `app` fixture keeps attachments' bytes in this test's own directory (returned),
    not in the checkout's instance folder."""
    root = tmp_path / "attachments"
    monkeypatch.setitem(app.extensions, "attachment_store", LocalStore(str(root)))
    return root
