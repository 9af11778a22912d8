"""The audit trail: who changed a user, a subscriber or a webhook, and every sign-in event.

An entry is added to the session of the change it records, so it commits with it or not at all.
Its `changes` hold each field's [old, new] value (null for none); a secret's values are never
written, only that it changed. Entries are read by admins through GET /api/v1/audit and aged
out by `flask --app wsgi audit prune` (AUDIT_RETENTION_DAYS), never edited.
"""

from datetime import timedelta

import click
from flask import current_app, g, has_request_context, request
from flask.cli import AppGroup
from sqlalchemy import delete, inspect, select

from .extensions import db
from .models import (
    ApiKey,
    AuditEntry,
    Subscriber,
    User,
    WebhookEndpoint,
    as_json_value,
    utcnow,
)
from .openapi import Blueprint
from .responses import Page
from .schemas import AuditEntryOut, AuditPageMeta, audit_list_args
from .scope import Scope, current_scope
from .tokens import token_required

bp = Blueprint("audit", __name__, description="Who changed what, outside ticket history.")
audit_cli = AppGroup("audit", help="The audit trail.")


@bp.get("")
@token_required
@bp.arguments(audit_list_args, location="query")
@bp.response(200, AuditEntryOut(many=True), meta=AuditPageMeta)
@bp.errors(403)
def list_entries(args):
    """Admins: their ISP's audit entries, newest first, filtered; the next page starts after
    meta.next_cursor."""
    scope = current_scope()
    scope.require_admin()
    conditions = [AuditEntry.isp_id == scope.isp_id]
    if "actor" in args:
        actor_type, _, actor_id = args["actor"].partition(":")
        conditions.append(AuditEntry.actor_type == actor_type)
        if actor_id:
            conditions.append(AuditEntry.actor_id == int(actor_id))
    for name in ("action", "object_type", "object_id"):
        if name in args:
            conditions.append(getattr(AuditEntry, name) == args[name])
    if "from_" in args:
        conditions.append(AuditEntry.at >= args["from_"])
    if "to" in args:
        conditions.append(AuditEntry.at < args["to"])
    if "cursor" in args:
        conditions.append(AuditEntry.id < args["cursor"])
    per_page = args["per_page"]
    rows = db.session.scalars(
        select(AuditEntry).where(*conditions).order_by(AuditEntry.id.desc()).limit(per_page + 1)
    ).all()
    more = len(rows) > per_page
    rows = rows[:per_page]
    return Page(rows, {"per_page": per_page, "next_cursor": str(rows[-1].id) if more else None})


REDACTED = "[redacted]"
# Fields whose values an entry never holds.
SECRETS = frozenset({"password", "password_hash", "secret", "secret_hash"})
# Who acts when a scope names nobody: an operator's command.
SYSTEM_NAME = "system"


def record(
    scope: Scope,
    action: str,
    obj,
    changes: dict | None = None,
    *,
    object_type: str | None = None,
) -> None:
    """Add an entry for `action` on `obj` (a model instance, or an id with its object_type),
    by the scope's principal, to the session of the change."""
    object_id = obj if object_type else obj.id
    add_entry(
        scope.isp_id,
        actor_of(scope),
        action,
        object_type or AUDITED[type(obj)],
        object_id,
        changes,
    )


def actor_of(scope: Scope) -> tuple:
    """An entry's (actor_type, actor_id, actor_name) for whoever the scope is."""
    if scope.key_id is not None:
        return ("key", scope.key_id, scope.principal_name)
    if scope.principal_id is not None:
        return ("user", scope.principal_id, scope.principal_name)
    return ("system", None, SYSTEM_NAME)


def seen_from(scope: Scope, address: str | None) -> bool:
    """Whether the scope's key has been used from this address before (its entries say)."""
    return (
        db.session.scalar(
            select(AuditEntry.id)
            .where(
                AuditEntry.object_type == "api_key",
                AuditEntry.object_id == scope.key_id,
                AuditEntry.action == "used_from_new_address",
                AuditEntry.ip == address,
            )
            .limit(1)
        )
        is not None
    )


def add_entry(isp_id, actor: tuple, action: str, object_type: str, object_id, changes=None):
    """The entry itself: actor is (type, id, name); the request's address and id when there is
    a request."""
    actor_type, actor_id, actor_name = actor
    in_request = has_request_context()
    db.session.add(
        AuditEntry(
            at=utcnow(),
            isp_id=isp_id,
            actor_type=actor_type,
            actor_id=actor_id,
            actor_name=actor_name,
            action=action,
            object_type=object_type,
            object_id=object_id,
            ip=request.remote_addr if in_request else None,
            request_id=g.get("request_id") if in_request else None,
            changes=_redacted(changes) if changes else None,
        )
    )


def created(obj, fields: tuple) -> dict:
    """A new object's values, as changes from nothing."""
    return {name: [None, getattr(obj, name)] for name in fields}


def changed(obj, fields: tuple) -> dict:
    """The fields of `obj` changed since it was loaded (not flushed yet): [old, new] each."""
    state, changes = inspect(obj), {}
    for name in fields:
        history = state.attrs[name].history
        if history.has_changes():
            old = history.deleted[0] if history.deleted else None
            new = history.added[0] if history.added else None
            if old != new:
                changes[name] = [old, new]
    return changes


def removed(obj, fields: tuple) -> dict:
    """A deleted object's last values, as changes to nothing."""
    return {name: [getattr(obj, name), None] for name in fields}


def _redacted(changes: dict) -> dict:
    return {
        name: [None if old is None else REDACTED, None if new is None else REDACTED]
        if name in SECRETS
        else [as_json_value(old), as_json_value(new)]
        for name, (old, new) in changes.items()
    }


# What each audited model is called in an entry's object_type.
AUDITED = {User: "user", ApiKey: "api_key", Subscriber: "subscriber", WebhookEndpoint: "webhook"}


@audit_cli.command("prune")
@click.option("--days", type=click.IntRange(min=1), help="Default: AUDIT_RETENTION_DAYS.")
def prune(days: int | None) -> None:
    """Delete the entries older than the retention period (for a scheduler to run daily)."""
    days = days or current_app.config["AUDIT_RETENTION_DAYS"]
    cutoff = utcnow() - timedelta(days=days)
    gone = db.session.execute(delete(AuditEntry).where(AuditEntry.at < cutoff)).rowcount
    db.session.commit()
    click.echo(f"Pruned {gone} audit entries older than {days} days.")
