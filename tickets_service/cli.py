"""Operator commands: `flask --app wsgi users|subscribers|webhooks|audit|desk ...` (and,
from seeding.py, seed-demo and seed-bulk).

Each prints what it created as one JSON object on stdout; bad input is one line on stderr
and exit status 1.
"""

import functools
import json

import click
from flask import Flask
from flask.cli import AppGroup
from marshmallow import Schema, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import OperationalError, ProgrammingError
from werkzeug.exceptions import HTTPException

from .extensions import db
from .models import (
    User,
)
from .schemas import (
    scope_in,
    subscriber_create_in,
    subscriber_out,
    user_create_in,
    user_out,
    user_update_in,
)
from .scope import Scope
from .subscribers import add_subscriber
from .users import add_user, change_user
from .webhooks.worker import webhooks_cli

users = AppGroup("users", help="Manage the people who log in to the API.")
subscribers = AppGroup("subscribers", help="Manage the ISP's subscribers.")


def register_commands(app: Flask) -> None:
    from .audit import audit_cli
    from .desk import desk_cli
    from .seeding import seed_bulk, seed_demo

    app.cli.add_command(users)
    app.cli.add_command(subscribers)
    app.cli.add_command(seed_demo)
    app.cli.add_command(seed_bulk)
    app.cli.add_command(webhooks_cli)
    app.cli.add_command(audit_cli)
    app.cli.add_command(desk_cli)


def fail(message: str) -> None:
    """Print one line on stderr and exit with status 1."""
    click.echo(f"error: {message}", err=True)
    raise SystemExit(1)


def plain_database_errors(command):
    """A database that is down, or not migrated, is one line on stderr and status 1."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (OperationalError, ProgrammingError) as err:
            fail(
                f"the database refused ({type(err.orig).__name__}): check DATABASE_URL, that "
                "the database is up, and that `flask --app wsgi db upgrade` has run"
            )

    return run


def validated(schema: Schema, options: dict) -> dict:
    """Load CLI options through the API's own schema; integers arrive as text."""
    data = {}
    for name, value in options.items():
        if value is None:
            continue
        if name.endswith("_id") and value.strip().isdigit():
            value = int(value)
        data[name] = value
    try:
        return schema.load(data)
    except ValidationError as err:
        problems = "; ".join(
            f"{field}: {' '.join(messages)}" for field, messages in sorted(err.messages.items())
        )
        fail(problems)


def operator_in(options: dict) -> Scope:
    """The scope an operator's command acts in: the ISP and branch its options name (both
    required), with an admin's reach, as nobody in particular."""
    missing = [f"--{name.replace('_', '-')}" for name, value in options.items() if not value]
    if missing:
        fail(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} required")
    data = validated(scope_in, options)
    return Scope.system(data["isp_id"], data["branch_id"])


def as_the_api(action):
    """Run one of the API's actions: what it refuses (409, 404...) is one line and status 1."""
    try:
        return action()
    except HTTPException as refusal:
        fail(refusal.description)


def emit(schema: Schema, record) -> None:
    click.echo(json.dumps(schema.dump(record)))


def find_user(email: str) -> User | None:
    """The user with this email (None for text that cannot be anybody's email)."""
    try:
        email.encode("utf-8")  # a shell may pass bytes that are no UTF-8: no one's email
    except UnicodeEncodeError:
        return None
    return db.session.scalar(select(User).where(User.email == email.strip().lower()))


def user_or_fail(email: str) -> User:
    user = find_user(email)
    if user is None:
        fail(f"no user with email {email!r}")
    return user


@users.command("create")
@click.option("--isp-id")
@click.option("--branch-id")
@click.option("--name")
@click.option("--email")
@click.option("--role", help="admin or staff")
@click.option("--password", help="Prompted for when not given.")
@plain_database_errors
def create_user(isp_id, branch_id, name, email, role, password):
    """Create a user who can log in (as an admin of the ISP would, by the same rules)."""
    scope = operator_in({"isp_id": isp_id, "branch_id": branch_id})
    if password is None:
        # On stderr, so stdout stays one JSON object a script can parse.
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    options = {"branch_id": branch_id, "name": name, "email": email, "role": role}
    data = validated(user_create_in, {**options, "password": password})
    emit(user_out, as_the_api(lambda: add_user(scope, data)))


@users.command("deactivate")
@click.option("--email", required=True)
@plain_database_errors
def deactivate_user(email):
    """Deactivate a user: logins and existing tokens stop working at once (not the ISP's last
    active admin, as in the API)."""
    user = user_or_fail(email)
    scope = Scope.system(user.isp_id, user.branch_id)
    emit(user_out, as_the_api(lambda: change_user(scope, user.id, {"is_active": False})))


@users.command("set-password")
@click.option("--email", required=True)
@click.option("--password", help="Prompted for when not given.")
@plain_database_errors
def set_password(email, password):
    """Change a user's password: every token the user holds stops working at once."""
    user = user_or_fail(email)
    if password is None:
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True, err=True)
    data = validated(user_update_in, {"password": password})
    scope = Scope.system(user.isp_id, user.branch_id)
    emit(user_out, as_the_api(lambda: change_user(scope, user.id, data)))


@subscribers.command("create")
@click.option("--isp-id")
@click.option("--branch-id")
@click.option("--name")
@click.option("--phone")
@click.option("--email")
@plain_database_errors
def create_subscriber(isp_id, branch_id, name, phone, email):
    """Create a subscriber tickets can refer to (as an admin of the ISP would)."""
    scope = operator_in({"isp_id": isp_id, "branch_id": branch_id})
    options = {"branch_id": branch_id, "name": name, "phone": phone, "email": email}
    data = validated(subscriber_create_in, options)
    emit(subscriber_out, as_the_api(lambda: add_subscriber(scope, data)))
