"""Running it: the factory and its settings from the environment, the files a PaaS reads, health
probes, response headers and CORS, the request log, and two real gunicorn instances sharing one
database."""

import io
import json
import logging
import os
import re
import runpy
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, inspect
from support.catalogue import CREATE, FETCH, LOGIN, ME, REPLY, STATUS
from support.client import JWT_SECRET, PASSWORD
from support.processes import exchange, free_port, gunicorns, parse, service_env

from tickets_service import create_app
from tickets_service.config import ConfigError, from_environment, normalize_database_url
from tickets_service.extensions import db
from tickets_service.models import AuditEntry, User

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ("JWT_SECRET_KEY", "FLASK_DEBUG", "DATABASE_URL", "JWT_ACCESS_TOKEN_EXPIRES")
SETTINGS += ("LOG_LEVEL",)
MEMORY = {"SQLALCHEMY_DATABASE_URI": "sqlite://"}
NO_DB = "postgresql://postgres@127.0.0.1:9/unreachable"  # nothing listens there
PANEL = "https://panel.isp.example"


@pytest.fixture
def environ(monkeypatch):
    """A process environment without any of the service's settings; set what a test needs."""
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def run(tmp_path, *args, **settings) -> subprocess.CompletedProcess:
    """Run python with `args` from the repository root, with only `settings` configured."""
    env = {name: value for name, value in os.environ.items() if name not in SETTINGS}
    env.update(settings)
    env.setdefault("DATABASE_URL", f"sqlite:///{tmp_path / 'wsgi.db'}")
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def assert_one_line_config_error(refused, variable: str) -> None:
    message = str(refused.value)
    assert variable in message
    assert "\n" not in message.strip()


# --- The factory: no JWT key, no start -------------------------------------------------------


@pytest.mark.parametrize("key", [None, ""], ids=["unset", "empty"])
@pytest.mark.parametrize(
    "debug", [None, "0", "false"], ids=["debug-unset", "debug-0", "debug-false"]
)
def test_without_a_jwt_key_the_app_refuses_to_start_in_one_line(environ, key, debug):
    if key is not None:
        environ.setenv("JWT_SECRET_KEY", key)
    if debug is not None:
        environ.setenv("FLASK_DEBUG", debug)
    with pytest.raises(ConfigError) as refused:
        create_app(MEMORY)
    assert_one_line_config_error(refused, "JWT_SECRET_KEY")


def test_the_jwt_key_comes_from_the_environment(environ):
    environ.setenv("JWT_SECRET_KEY", JWT_SECRET)
    app = create_app(MEMORY)
    assert app.config["JWT_SECRET_KEY"] == JWT_SECRET
    assert not app.testing


@pytest.mark.parametrize(
    ("config", "debug"),
    [pytest.param({"TESTING": True}, None, id="testing"), pytest.param({}, "1", id="flask-debug")],
)
def test_testing_and_debug_start_without_a_jwt_key(environ, config, debug):
    if debug is not None:
        environ.setenv("FLASK_DEBUG", debug)
    assert create_app({**MEMORY, **config}).config["JWT_SECRET_KEY"]


def test_wsgi_without_a_jwt_key_exits_non_zero_with_one_line(tmp_path):
    result = run(tmp_path, "-c", "import wsgi")
    assert result.returncode != 0
    message = result.stderr.strip()
    assert "JWT_SECRET_KEY" in message
    assert len(message.splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_wsgi_with_a_jwt_key_builds_the_app(tmp_path):
    result = run(tmp_path, "-c", "import wsgi; print(wsgi.app.name)", JWT_SECRET_KEY=JWT_SECRET)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "tickets_service"


# --- Settings from the environment ----------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("JWT_ACCESS_TOKEN_EXPIRES", None, 3600),
        ("JWT_ACCESS_TOKEN_EXPIRES", "120", 120),
        ("MAX_CONTENT_LENGTH", None, 1024 * 1024),
        ("MAX_CONTENT_LENGTH", "2048", 2048),
    ],
)
def test_a_setting_comes_from_the_environment(environ, variable, value, expected):
    environ.delenv(variable, raising=False)
    if value is not None:
        environ.setenv(variable, value)
    assert create_app({"TESTING": True, **MEMORY}).config[variable] == expected


@pytest.mark.parametrize("value", ["soon", "-5"])
def test_a_malformed_setting_refuses_to_start_in_one_line(environ, value):
    environ.setenv("JWT_ACCESS_TOKEN_EXPIRES", value)
    with pytest.raises(ConfigError) as refused:
        create_app({"TESTING": True, **MEMORY})
    assert_one_line_config_error(refused, "JWT_ACCESS_TOKEN_EXPIRES")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@db.example:5432/t", "postgresql+psycopg://u:p@db.example:5432/t"),
        ("postgresql://u:p@db.example/t", "postgresql+psycopg://u:p@db.example/t"),
        (
            "postgresql://db.example/t?sslmode=require",
            "postgresql+psycopg://db.example/t?sslmode=require",
        ),
        ("postgresql+psycopg://u@db.example/t", "postgresql+psycopg://u@db.example/t"),
        ("sqlite:///instance/tickets.db", "sqlite:///instance/tickets.db"),
        ("sqlite://", "sqlite://"),
    ],
)
def test_every_postgresql_url_spelling_uses_psycopg_3(given, expected):
    assert normalize_database_url(given) == expected


@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_database_url_from_the_environment_reaches_the_engine(environ, scheme):
    environ.setenv("DATABASE_URL", f"{scheme}://u:p@db.example:5432/tickets")
    with create_app({"TESTING": True, "JWT_SECRET_KEY": JWT_SECRET}).app_context():
        url = db.engine.url
    assert url.drivername == "postgresql+psycopg"
    assert (url.host, url.port, url.database) == ("db.example", 5432, "tickets")


@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_without_database_url_the_app_uses_sqlite_in_the_instance_folder(environ, value):
    if value is not None:
        environ.setenv("DATABASE_URL", value)
    app = create_app({"TESTING": True, "JWT_SECRET_KEY": JWT_SECRET})
    with app.app_context():
        url = db.engine.url
    assert url.get_backend_name() == "sqlite"
    assert Path(url.database).parent == Path(app.instance_path)


def test_cors_origins_are_a_comma_separated_list():
    config = from_environment({"CORS_ORIGINS": f"{PANEL}, https://ops.isp.example ,"})
    assert config["CORS_ORIGINS"] == [PANEL, "https://ops.isp.example"]
    assert from_environment({})["CORS_ORIGINS"] == []


def test_error_envelope_keys_keep_their_order(client):
    assert list(client.get("/api/v1/no-such-route").get_json())[:2] == ["success", "message"]


# --- The files a PaaS reads ------------------------------------------------------------------


def gunicorn_settings(monkeypatch, **environ) -> dict:
    for name in ("PORT", "WEB_CONCURRENCY", "GUNICORN_BIND", "GUNICORN_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


@pytest.mark.parametrize(
    ("environ", "setting", "expected"),
    [
        ({"PORT": "5123"}, "bind", "0.0.0.0:5123"),
        ({}, "bind", "127.0.0.1:8000"),
        ({"WEB_CONCURRENCY": "3"}, "workers", 3),
        ({}, "workers", len(os.sched_getaffinity(0)) * 2 + 1),
    ],
    ids=["port-on-every-interface", "loopback-without-port", "web-concurrency", "default-workers"],
)
def test_gunicorn_reads_the_paas_environment(monkeypatch, environ, setting, expected):
    assert gunicorn_settings(monkeypatch, **environ)[setting] == expected


def test_gunicorn_has_sane_timeouts_and_no_control_socket(monkeypatch):
    settings = gunicorn_settings(monkeypatch)
    assert 10 <= settings["timeout"] <= 120
    assert settings["graceful_timeout"] <= settings["timeout"]
    assert settings["control_socket_disable"] is True


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"cpu.max": "max 100000"}, "all"),
        ({"cpu.max": "150000 100000"}, 2),
        ({"cpu.max": "50000 100000"}, 1),
        ({"cpu/cpu.cfs_quota_us": "100000", "cpu/cpu.cfs_period_us": "100000"}, 1),
        ({"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, "all"),
        ({}, "all"),
    ],
    ids=["v2-unlimited", "v2-one-and-a-half", "v2-half", "v1-one", "v1-unlimited", "none"],
)
def test_workers_follow_the_cpus_a_container_may_use(monkeypatch, tmp_path, files, expected):
    settings = gunicorn_settings(monkeypatch)
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    affinity = len(os.sched_getaffinity(0))
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(max(affinity, 4))))
    allowed = max(affinity, 4)
    assert settings["usable_cpus"](tmp_path) == (allowed if expected == "all" else expected)


def test_the_procfile_migrates_on_release_and_serves_with_gunicorn():
    lines = dict(
        line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line
    )
    assert lines["release"].strip() == "flask --app wsgi db upgrade"
    assert lines["web"].strip().startswith("gunicorn ")
    assert lines["web"].strip().endswith("wsgi:app")


def test_python_is_pinned_and_requirements_install_the_package_itself_pinned():
    assert (ROOT / ".python-version").read_text().strip() == "3.11"
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    assert [ln for ln in lines if ln and not ln.startswith("#")] == ["-c constraints.txt", "."]


def test_every_dependency_is_pinned_and_installed_at_its_pin():
    """constraints.txt pins what setup.cfg asks for, and the environment has those versions
    (make install and CI install through it; `make constraints` refreshes it)."""
    from importlib.metadata import PackageNotFoundError, version

    lines = (ROOT / "constraints.txt").read_text().splitlines()
    pins = {name.lower(): pin for name, pin in (ln.split("==") for ln in lines if "==" in ln)}
    for name in ("flask", "gunicorn", "sqlalchemy", "psycopg", "marshmallow", "flask-smorest"):
        try:
            assert version(name) == pins[name], name
        except PackageNotFoundError:
            pytest.fail(f"{name} is pinned but not installed")


def test_flask_db_upgrade_builds_the_schema_on_an_empty_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    args = ("-m", "flask", "--app", "wsgi", "db", "upgrade")
    result = run(tmp_path, *args, DATABASE_URL=url, JWT_SECRET_KEY=JWT_SECRET)
    assert result.returncode == 0, result.stderr
    engine = create_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert tables >= {*db.metadata.tables, "alembic_version"}


# --- Health probes: no token needed ----------------------------------------------------------


@pytest.mark.parametrize(
    ("database", "path", "status", "body"),
    [
        (NO_DB, "/healthz", 200, {"success": True, "data": {"status": "ok"}}),
        (None, "/readyz", 200, {"success": True, "data": {"status": "ready", "database": "ok"}}),
        (NO_DB, "/readyz", 503, {"success": False, "message": "Database unreachable."}),
    ],
    ids=["healthz-needs-no-database", "readyz-queries-it", "readyz-503-without-it"],
)
def test_probes_answer_in_the_envelope_without_a_token(make_app, database, path, status, body):
    app = make_app(**({"SQLALCHEMY_DATABASE_URI": database} if database else {}))
    response = app.test_client().get(path)
    assert (response.status_code, response.is_json, response.json) == (status, True, body)


# --- Headers and CORS ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/api/v1/auth/me", 200),
        ("GET", "/api/v1/tickets/999", 404),
        ("GET", "/api/v1/tickets?isp_id=1&branch_id=1", 422),
        ("DELETE", "/api/v1/tickets", 405),
        ("POST", "/api/v1/auth/login", 200),
    ],
)
def test_responses_are_neither_sniffed_nor_cached(client, admin, method, path, expected):
    credentials = {"email": admin.email, "password": PASSWORD}
    response = client.open(path, method=method, headers=admin.headers, json=credentials)
    assert response.status_code == expected
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


def preflight(client, headers="Authorization, Content-Type"):
    asked = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": headers}
    return client.options("/api/v1/tickets", headers={"Origin": PANEL, **asked})


def test_cors_is_off_by_default(client, admin):
    response = client.get(ME.path, headers={**admin.headers, "Origin": PANEL})
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Origin" not in preflight(client).headers


@pytest.fixture
def cors_client(make_app):
    return make_app(CORS_ORIGINS=[PANEL]).test_client()


def test_cors_allows_the_listed_origins(cors_client, admin):
    response = cors_client.get(ME.path, headers={**admin.headers, "Origin": PANEL})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == PANEL
    assert "X-Request-ID" in response.headers["Access-Control-Expose-Headers"]
    response = preflight(cors_client)
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == PANEL
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed
    assert "content-type" in allowed


def test_a_browser_may_send_and_read_the_concurrency_headers(cors_client, admin):
    response = preflight(cors_client, "If-Match, If-None-Match, Idempotency-Key")
    allowed = response.headers["Access-Control-Allow-Headers"].lower().replace(" ", "").split(",")
    assert {"if-match", "if-none-match", "idempotency-key"} <= set(allowed)
    response = cors_client.get(ME.path, headers={**admin.headers, "Origin": PANEL})
    exposed = response.headers["Access-Control-Expose-Headers"]
    assert "ETag" in exposed and "Idempotent-Replayed" in exposed


def test_a_browser_may_read_the_rate_limit_headers(make_app, admin):
    client = make_app(CORS_ORIGINS=[PANEL], RATE_LIMITS=True).test_client()
    response = client.get(ME.path, headers={**admin.headers, "Origin": PANEL})
    exposed = {
        name.strip() for name in response.headers["Access-Control-Expose-Headers"].split(",")
    }
    assert {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Retry-After"} <= exposed
    assert response.headers["RateLimit-Limit"] == "600"


# --- The client's address behind a proxy ------------------------------------------------------


@pytest.mark.parametrize(
    ("forwarded", "seen"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8::7", "2001:db8::7"),
        ("a" * 60, "127.0.0.1"),  # not an address: the connection's own is kept
        ("not an address", "127.0.0.1"),
        ("1" * 46, "127.0.0.1"),
    ],
)
def test_behind_a_proxy_the_client_address_is_the_forwarded_one_when_it_is_one(
    make_app, admin, rows, forwarded, seen
):
    client = make_app(TRUSTED_PROXIES=1).test_client()
    body = {"email": admin.email, "password": "wrong password"}
    response = client.post(LOGIN.path, json=body, headers={"X-Forwarded-For": forwarded})
    assert response.status_code == 401
    [entry] = [e for e in rows(AuditEntry) if e["action"] == "login_failed"]
    assert entry["ip"] == seen


def test_cors_refuses_other_origins(cors_client, admin):
    headers = {**admin.headers, "Origin": "https://evil.example"}
    assert "Access-Control-Allow-Origin" not in cors_client.get(ME.path, headers=headers).headers


# --- The request log: one JSON line per request on stdout ------------------------------------


@pytest.fixture
def request_log(app):
    """request_log() -> the JSON lines the app wrote to stdout during the test, parsed: its own
    handler writes to a buffer, so the test sees the very text, whatever formatter writes it."""
    [handler] = logging.getLogger("tickets_service").handlers
    buffer = io.StringIO()
    stdout = handler.setStream(buffer)
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    handler.setStream(stdout)


def test_one_json_line_per_request_with_its_fields(client, admin, request_log):
    client.get("/api/v1/tickets/1?isp_id=1", headers=admin.headers)
    client.get("/healthz")
    first, second = request_log()
    assert (first["method"], first["path"], first["status"]) == ("GET", "/api/v1/tickets/1", 404)
    assert first["user_id"] == admin.id
    assert isinstance(first["duration_ms"], float | int)
    assert re.fullmatch(r"[0-9a-f]{32}", first["request_id"])
    assert (second["path"], second["user_id"]) == ("/healthz", None)


def test_a_keys_request_is_logged_with_its_key(client, admin, make_key, request_log):
    key = make_key(admin, used=False)
    client.get("/api/v1/tickets/stats", headers=key.headers)
    entry = request_log()[-1]
    assert (entry["status"], entry["key_id"], entry["user_id"]) == (200, key.id, None)


def test_a_clients_request_id_is_logged_and_echoed(client, request_log):
    response = client.get("/no/such/route", headers={"X-Request-ID": "panel-42.retry-1"})
    assert response.status_code == 404
    assert response.headers["X-Request-ID"] == "panel-42.retry-1"
    [entry] = request_log()
    assert entry["request_id"] == "panel-42.retry-1"


@pytest.mark.parametrize("given", ["", "has space", "x" * 129, 'quote"d', "<script>"])
def test_an_unsafe_request_id_is_replaced_by_a_generated_one(client, request_log, given):
    response = client.get("/healthz", headers={"X-Request-ID": given})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])
    assert [entry["request_id"] for entry in request_log()] == [response.headers["X-Request-ID"]]


def test_no_token_password_or_hash_reaches_the_log(send, world, request_log):
    token = send(LOGIN, world).json["data"]["access_token"]
    send(ME, world, headers={"Authorization": f"Bearer {token}"})
    send(LOGIN, world, {"email": world.caller.email, "password": "wrong-" + PASSWORD})
    send(FETCH, world)
    lines = request_log()
    assert len(lines) == 4
    text = json.dumps(lines)
    for secret in (token, world.caller.token, PASSWORD, "scrypt:", "Bearer", "isp_id="):
        assert secret not in text


# --- Two gunicorn instances on one database --------------------------------------------------
# Real processes on loopback ports, started once for the section; every wait is bounded.


def call(base, method, path, body=None, token=None):
    """One HTTP request; returns (status, parsed JSON body)."""
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    headers = {"Accept": "application/json", **auth}
    response = requests.request(method, base + path, json=body, headers=headers, timeout=10)
    return response.status_code, response.json()


@pytest.fixture(scope="module")
def instances(app, db_url, tmp_path_factory):
    """Two gunicorn instances (one worker each) on the test database; yields their base URLs."""
    with gunicorns(tmp_path_factory.mktemp("gunicorn"), service_env(db_url), count=2) as bases:
        yield bases


@pytest.mark.slow
def test_token_and_tickets_work_across_instances(instances, admin, make_subscriber):
    first, second = instances
    subscriber_id = make_subscriber(name="John Doe")
    status, body = call(first, "POST", LOGIN.path, {"email": admin.email, "password": PASSWORD})
    assert status == 200
    token = body["data"]["access_token"]

    status, body = call(second, "GET", ME.path, token=token)
    assert (status, body["data"]["id"]) == (200, admin.id)

    sent = {"title": "Connection Issue", "description": "Cannot connect", "priority": 2}
    status, body = call(first, "POST", CREATE.path, {**sent, "subscriber_id": subscriber_id}, token)
    assert status == 201
    ticket = body["data"]["id"]
    fetch, reply, change = (e.path.format(ticket=ticket) for e in (FETCH, REPLY, STATUS))

    status, body = call(second, "GET", fetch, token=token)
    assert (status, body["data"]["subscriber_name"]) == (200, "John Doe")
    status, body = call(second, "POST", reply, {"message": "On it."}, token)
    assert (status, body["message"]) == (201, "Reply added successfully")
    status, body = call(second, "PUT", change, {"status": 1}, token)
    assert (status, body["message"]) == (200, "Ticket status updated successfully")

    status, body = call(first, "GET", fetch, token=token)
    assert status == 200
    assert body["data"]["status"] == 1
    assert [r["message"] for r in body["data"]["replies"]] == ["On it."]


@pytest.mark.slow
@pytest.mark.parametrize("authenticated", [False, True])
def test_an_oversized_body_gets_the_413_envelope_over_real_http(instances, admin, authenticated):
    """The body is read before any early answer, so the client sees our 413, not a reset."""
    headers = {"Content-Type": "application/json", **(admin.headers if authenticated else {})}
    big = b"x" * (10 * 1024 * 1024)
    response = requests.post(instances[0] + CREATE.path, data=big, headers=headers, timeout=30)
    assert response.status_code == 413
    assert response.json() == {"success": False, "message": "Request body too large."}


@pytest.mark.slow
def test_a_small_body_with_an_early_401_is_answered_cleanly(instances):
    status, body = call(instances[1], "POST", CREATE.path, {"title": "x" * 500_000})
    assert status == 401
    assert body["success"] is False


@pytest.mark.slow
@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /api/v1/tickets?q=" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nIdempotency-Key: a\x7fb\r\n\r\n", 400),
        (b"NOT HTTP AT ALL\r\n\r\n", 400),
    ],
    ids=["request-line-too-long", "header-too-large", "control-in-a-header", "not-http"],
)
def test_what_gunicorn_refuses_itself_is_answered_in_the_envelope(instances, request_bytes, status):
    got, headers, answer = parse(exchange(instances[0], request_bytes))
    assert (got, headers["Content-Type"]) == (status, "application/json")
    assert answer.keys() == {"success", "message"}
    assert answer["success"] is False and answer["message"]


@pytest.mark.slow
@pytest.mark.parametrize("isp_id", range(11, 16))
def test_two_admins_demoting_each_other_through_two_instances_get_no_5xx(
    instances, make_user, rows, isp_id
):
    """Truly at once (two processes): one demotion wins, the other is 401 (its caller's token
    went with its role) or 409 (the last admin), and the ISP keeps one admin; never a deadlock."""
    first, second = (make_user(isp_id=isp_id, branch_id=1, role="admin") for _ in range(2))
    barrier = threading.Barrier(2)

    def demote(base: str, caller, target) -> int:
        barrier.wait(timeout=10)
        return call(base, "PUT", f"/api/v1/users/{target.id}", {"role": "staff"}, caller.token)

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(demote, instances, (first, second), (second, first)))

    codes = sorted(status for status, _ in answers)
    assert codes[0] == 200 and codes[1] in {401, 409}, answers
    assert all(body["success"] is (status == 200) for status, body in answers)
    admins = [row for row in rows(User) if row["isp_id"] == isp_id and row["role"] == "admin"]
    assert len(admins) == 1


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LOG_LEVEL", "verbose"),
        ("DATABASE_URL", "nonsense"),
        ("DATABASE_URL", "postgres://user@host:notaport/tickets"),
        ("DATABASE_URL", "mysql://user@host/tickets"),
        ("WEBHOOK_ALLOW_PRIVATE", "maybe"),
        ("FLASK_DEBUG", "perhaps"),
    ],
)
def test_a_malformed_setting_is_a_one_line_config_error(name, value):
    with pytest.raises(ConfigError) as refused:
        from_environment({name: value})
    assert_one_line_config_error(refused, name)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("LOG_LEVEL", " debug ", "DEBUG"),
        ("WEBHOOK_ALLOW_PRIVATE", "Off", False),
        ("WEBHOOK_ALLOW_PRIVATE", "YES", True),
        ("DATABASE_URL", "postgres://user@host:5432/tickets", "postgres://user@host:5432/tickets"),
    ],
)
def test_well_formed_settings_in_any_case_are_taken(name, value, expected):
    setting = {"DATABASE_URL": "SQLALCHEMY_DATABASE_URI"}.get(name, name)
    assert from_environment({name: value})[setting] == expected


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("JWT_SECRET_KEY", ""),
        ("LOG_LEVEL", "verbose"),
        ("DB_POOL_SIZE", "0"),
        ("DATABASE_URL", "mysql://user@host/tickets"),
        ("WEB_CONCURRENCY", "0"),
        ("GUNICORN_TIMEOUT", "abc"),
    ],
)
def test_gunicorn_refuses_to_start_on_a_bad_setting_with_one_line(tmp_path, name, value):
    """The master stops before any worker boots, rather than booting failing workers forever."""
    bind, argv = f"127.0.0.1:{free_port()}", ("--config", "gunicorn.conf.py", "wsgi:app")
    settings = {"JWT_SECRET_KEY": JWT_SECRET, "WEB_CONCURRENCY": "1", "PORT": "", name: value}
    result = run(tmp_path, "-m", "gunicorn", *argv, GUNICORN_BIND=bind, **settings)
    assert result.returncode != 0
    reasons = [line for line in result.stderr.splitlines() if "configuration error" in line]
    assert len(reasons) == 1 and name in reasons[0], result.stderr
    assert "Traceback" not in result.stderr and "Booting worker" not in result.stderr
