"""Operator commands: `flask --app wsgi users|subscribers|webhooks ...` (and, from seeding.py,
seed-demo and seed-bulk).

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

from .extensions import db
from .models import (
    Subscriber,
    User,
)
from .schemas import new_password, subscriber_in, subscriber_out, user_in, user_out
from .webhooks.worker import webhooks_cli

users = AppGroup("users", help="Manage the people who log in to the API.")
subscribers = AppGroup("subscribers", help="Manage the ISP's subscribers.")


def register_commands(app: Flask) -> None:
    from .seeding import seed_bulk, seed_demo

    app.cli.add_command(users)
    app.cli.add_command(subscribers)
    app.cli.add_command(seed_demo)
    app.cli.add_command(seed_bulk)
    app.cli.add_command(webhooks_cli)


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


def emit(schema: Schema, record) -> None:
    click.echo(json.dumps(schema.dump(record)))


def find_user(email: str) -> User | None:
    """The user with this email (None for text that cannot be anybody's email)."""
    try:
        email.encode("utf-8")  # a shell may pass bytes that are no UTF-8: no one's email
    except UnicodeEncodeError:
        return None
    return db.session.scalar(select(User).where(User.email == email.strip().lower()))


@users.command("create")
@click.option("--isp-id")
@click.option("--branch-id")
@click.option("--name")
@click.option("--email")
@click.option("--role", help="admin or staff")
@click.option("--password", help="Prompted for when not given.")
@plain_database_errors
def create_user(isp_id, branch_id, name, email, role, password):
    """Create a user who can log in."""
    if password is None:
        # On stderr, so stdout stays one JSON object a script can parse.
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    data = validated(
        user_in,
        {
            "isp_id": isp_id,
            "branch_id": branch_id,
            "name": name,
            "email": email,
            "role": role,
            "password": password,
        },
    )
    data["email"] = data["email"].lower()
    if find_user(data["email"]) is not None:
        fail(f"a user with email {data['email']} already exists")
    user = User(**{k: v for k, v in data.items() if k != "password"})
    user.set_password(data["password"])
    db.session.add(user)
    db.session.commit()
    emit(user_out, user)


@users.command("deactivate")
@click.option("--email", required=True)
@plain_database_errors
def deactivate_user(email):
    """Deactivate a user: logins and existing tokens stop working at once."""
    user = find_user(email)
    if user is None:
        fail(f"no user with email {email!r}")
    user.is_active = False
    db.session.commit()
    emit(user_out, user)


@users.command("set-password")
@click.option("--email", required=True)
@click.option("--password", help="Prompted for when not given.")
@plain_database_errors
def set_password(email, password):
    """Change a user's password: every token the user holds stops working at once."""
    user = find_user(email)
    if user is None:
        fail(f"no user with email {email!r}")
    if password is None:
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True, err=True)
    user.set_password(validated(new_password, {"password": password})["password"])
    db.session.commit()
    emit(user_out, user)


@subscribers.command("create")
@click.option("--isp-id")
@click.option("--branch-id")
@click.option("--name")
@click.option("--phone")
@click.option("--email")
@plain_database_errors
def create_subscriber(isp_id, branch_id, name, phone, email):
    """Create a subscriber tickets can refer to."""
    data = validated(
        subscriber_in,
        {"isp_id": isp_id, "branch_id": branch_id, "name": name, "phone": phone, "email": email},
    )
    subscriber = Subscriber(**data)
    db.session.add(subscriber)
    db.session.commit()
    emit(subscriber_out, subscriber)
