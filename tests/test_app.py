"""Issue 2, points 14 and 15: the factory, its settings from the environment, the refusal to
start without a JWT key, the database URL, SQLite foreign keys, and unsorted JSON keys."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from tickets_service import create_app
from tickets_service.config import ConfigError, normalize_database_url
from tickets_service.extensions import db

from conftest import JWT_SECRET

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ("JWT_SECRET_KEY", "FLASK_DEBUG", "DATABASE_URL", "JWT_ACCESS_TOKEN_EXPIRES")


@pytest.fixture
def environ(monkeypatch):
    """A process environment without any of the service's settings; set what a test needs."""
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def run_python(code: str, tmp_path, **settings) -> subprocess.CompletedProcess:
    """Run `python -c code` from the repository root with only `settings` configured."""
    env = {name: value for name, value in os.environ.items() if name not in SETTINGS}
    env.update(settings)
    env.setdefault("DATABASE_URL", f"sqlite:///{tmp_path / 'wsgi.db'}")
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


# --- Point 15: no JWT key, no start ----------------------------------------------------------


@pytest.mark.parametrize("key", [None, ""], ids=["unset", "empty"])
@pytest.mark.parametrize(
    "debug", [None, "0", "false"], ids=["debug-unset", "debug-0", "debug-false"]
)
def test_create_app_without_jwt_key_raises_a_one_line_config_error(environ, key, debug):
    if key is not None:
        environ.setenv("JWT_SECRET_KEY", key)
    if debug is not None:
        environ.setenv("FLASK_DEBUG", debug)
    with pytest.raises(ConfigError) as refused:
        create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})
    message = str(refused.value)
    assert "JWT_SECRET_KEY" in message
    assert "\n" not in message.strip()


def test_create_app_takes_the_jwt_key_from_the_environment(environ):
    environ.setenv("JWT_SECRET_KEY", JWT_SECRET)
    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})
    assert app.config["JWT_SECRET_KEY"] == JWT_SECRET
    assert not app.testing


@pytest.mark.parametrize(
    ("config", "debug"),
    [
        pytest.param({"TESTING": True}, None, id="testing"),
        pytest.param({}, "1", id="flask-debug"),
    ],
)
def test_create_app_without_jwt_key_starts_in_testing_or_debug(environ, config, debug):
    if debug is not None:
        environ.setenv("FLASK_DEBUG", debug)
    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", **config})
    assert app.config["JWT_SECRET_KEY"]


def test_wsgi_without_jwt_key_exits_non_zero_with_one_line(tmp_path):
    result = run_python("import wsgi", tmp_path)
    assert result.returncode != 0
    message = result.stderr.strip()
    assert "JWT_SECRET_KEY" in message
    assert len(message.splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_wsgi_with_jwt_key_builds_the_app(tmp_path):
    result = run_python("import wsgi; print(wsgi.app.name)", tmp_path, JWT_SECRET_KEY=JWT_SECRET)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "tickets_service"


# --- Point 15: settings from the environment -------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "setting", "expected"),
    [
        ("JWT_ACCESS_TOKEN_EXPIRES", None, "JWT_ACCESS_TOKEN_EXPIRES", 3600),
        ("JWT_ACCESS_TOKEN_EXPIRES", "120", "JWT_ACCESS_TOKEN_EXPIRES", 120),
        ("MAX_CONTENT_LENGTH", None, "MAX_CONTENT_LENGTH", 1024 * 1024),
        ("MAX_CONTENT_LENGTH", "2048", "MAX_CONTENT_LENGTH", 2048),
    ],
)
def test_setting_comes_from_the_environment(environ, variable, value, setting, expected):
    environ.delenv(variable, raising=False)
    if value is not None:
        environ.setenv(variable, value)
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    assert app.config[setting] == expected


@pytest.mark.parametrize("value", ["soon", "-5"])
def test_malformed_setting_raises_a_one_line_config_error(environ, value):
    environ.setenv("JWT_ACCESS_TOKEN_EXPIRES", value)
    with pytest.raises(ConfigError) as refused:
        create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    message = str(refused.value)
    assert "JWT_ACCESS_TOKEN_EXPIRES" in message
    assert "\n" not in message.strip()


# --- Point 14: the database URL --------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (
            "postgres://u:p@db.example:5432/tickets",
            "postgresql+psycopg://u:p@db.example:5432/tickets",
        ),
        ("postgresql://u:p@db.example/tickets", "postgresql+psycopg://u:p@db.example/tickets"),
        (
            "postgresql://db.example/tickets?sslmode=require",
            "postgresql+psycopg://db.example/tickets?sslmode=require",
        ),
        ("postgresql+psycopg://u@db.example/tickets", "postgresql+psycopg://u@db.example/tickets"),
        ("sqlite:///instance/tickets.db", "sqlite:///instance/tickets.db"),
        ("sqlite://", "sqlite://"),
    ],
)
def test_normalize_database_url(given, expected):
    assert normalize_database_url(given) == expected


@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_database_url_from_the_environment_uses_psycopg_3(environ, scheme):
    environ.setenv("DATABASE_URL", f"{scheme}://u:p@db.example:5432/tickets")
    app = create_app({"TESTING": True, "JWT_SECRET_KEY": JWT_SECRET})
    with app.app_context():
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


def test_flask_db_upgrade_builds_the_schema_on_an_empty_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    env = {name: value for name, value in os.environ.items() if name not in SETTINGS}
    env.update(DATABASE_URL=url, JWT_SECRET_KEY=JWT_SECRET)
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    engine = create_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert tables >= {"users", "subscribers", "tickets", "ticket_replies", "alembic_version"}


# --- Point 1: JSON keys keep their order -----------------------------------------------------


def test_error_envelope_keys_are_not_sorted(client):
    body = client.get("/api/v1/no-such-route").get_json()
    assert list(body)[:2] == ["success", "message"]
