"""Desk rules: each ISP's catalogue of ticket types, its SLA policies, its tags, and the sweep
that closes resolved tickets and sends the SLA's events.

A new ISP's catalogue is made with its first use (DEFAULT_TYPES). Tickets name a type by its
key, which never changes, so a ticket's answer shows it without a join and the kept counts
count by it.
"""

import time
from datetime import timedelta
from functools import cache

import click
from flask import abort
from flask.cli import AppGroup
from marshmallow import ValidationError
from sqlalchemy import Integer, String, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite

from . import sla
from .extensions import db
from .fields import SLUG
from .models import (
    DEFAULT_TYPE,
    DEFAULT_TYPES,
    Actor,
    HistoryAction,
    IspSettings,
    SlaEvent,
    SlaPolicy,
    Ticket,
    TicketStatus,
    TicketTag,
    TicketType,
    User,
    as_utc,
    utcnow,
)
from .openapi import Blueprint
from .schemas import (
    SlaPolicyOut,
    TagOut,
    TicketTypeOut,
    sla_policy_args,
    sla_policy_in,
    tag_args,
    ticket_scope_args,
    ticket_type_in,
    ticket_type_update_in,
)
from .scope import assignable_to, current_scope, tickets_within, without_scope
from .tokens import token_required
from .transport import reject_impossible_ids

types_bp = Blueprint(
    "ticket_types",
    __name__,
    description="The ISP's ticket types (admins write).",
    key_scopes=("tickets:read", "tickets:write"),
)
types_bp.url_value_preprocessor(reject_impossible_ids("Ticket type not found."))
policies_bp = Blueprint(
    "sla_policies",
    __name__,
    description="The ISP's SLA policies, one per ticket type and priority (admins write).",
    key_scopes=("tickets:read", "tickets:write"),
)


@policies_bp.url_value_preprocessor
def _possible_policy(_endpoint, values) -> None:
    """A path whose priority is no code, or whose type is no key, names no policy: 404 on
    every method, before anything reaches SQL (a priority is a SMALLINT there)."""
    if values and "priority" in values:
        key, priority = values["type_key"], values["priority"]
        if priority not in (1, 2, 3) or len(key) > 40 or not SLUG.fullmatch(key):
            abort(404, "No SLA policy for this type and priority: priority is 1, 2 or 3.")


tags_bp = Blueprint(
    "tags",
    __name__,
    description="The tags of the ISP's tickets.",
    key_scopes=("tickets:read", None),
)
desk_cli = AppGroup("desk", help="The desk's scheduled work.")

UNKNOWN_TYPE = "No active ticket type with this key (GET /api/v1/ticket-types)."


# --- The catalogue --------------------------------------------------------------------------


def ensure_catalogue(isp_id: int) -> bool:
    """Make the ISP's catalogue of the default types if it has none yet; whether it did."""
    if db.session.scalar(select(TicketType.id).where(TicketType.isp_id == isp_id).limit(1)):
        return False
    now = utcnow()
    rows = [
        {
            "isp_id": isp_id,
            "key": key,
            "name": name,
            "default_priority": int(priority),
            "active": True,
            "created_at": now,
            "updated_at": now,
        }
        for key, name, priority in DEFAULT_TYPES
    ]
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(TicketType).values(rows)
    db.session.execute(statement.on_conflict_do_nothing(index_elements=["isp_id", "key"]))
    return True


def type_columns(isp_id, type_key) -> list:
    """A type's active flag and default assignee as columns (None: no such type)."""

    def of(column):
        found = (TicketType.isp_id == isp_id, TicketType.key == type_key)
        return select(column).where(*found).scalar_subquery()

    return [of(TicketType.active).label("type_active"), of(TicketType.default_assignee_id)]


def desk_columns() -> list:
    """What a new ticket's type and priority bring (type_columns, then sla.policy_columns),
    parameters isp_id, type and priority: Create Ticket reads them with its subscriber."""
    isp = bindparam("isp_id", type_=Integer)
    key = bindparam("type", type_=String)
    return [*type_columns(isp, key), *sla.policy_columns(isp, key, bindparam("priority"))]


@cache
def _desk_statement():
    return select(*desk_columns())


def read_desk(isp_id: int, type: str, priority: int, found: tuple | None = None) -> tuple:
    """(default assignee, policy, calendar) of a new ticket of this type and priority; 422 on
    `type` when the ISP has no such active type. `found`: desk_columns' values, already read
    (with the subscriber) by the caller."""
    params = {"isp_id": isp_id, "type": type, "priority": int(priority)}
    if found is None:
        found = tuple(db.session.execute(_desk_statement(), params).one())
    if found[0] is None:  # an unknown key, or the ISP's first ticket (made now, or just
        ensure_catalogue(isp_id)  # by a concurrent first ticket: read again, either way)
        found = tuple(db.session.execute(_desk_statement(), params).one())
    active, assignee = found[:2]
    if not active:
        raise ValidationError({"type": [UNKNOWN_TYPE]})
    policy, calendar = sla.from_row(found[2:])
    return assignee, policy, calendar


def type_of(isp_id: int, type_key: str) -> TicketType | None:
    """The ISP's type of this key, active or not (None: it has none). As in read_desk, a miss
    makes the catalogue if it is new and looks again (a concurrent first use may just have)."""
    query = select(TicketType).where(TicketType.isp_id == isp_id, TicketType.key == type_key)
    found = db.session.scalar(query)
    if found is None:
        ensure_catalogue(isp_id)
        found = db.session.scalar(query)
    return found


def check_type(isp_id: int, type_key: str) -> TicketType:
    """The ISP's active type of this key (422 on `type` otherwise)."""
    found = type_of(isp_id, type_key)
    if found is None or not found.active:
        raise ValidationError({"type": [UNKNOWN_TYPE]})
    return found


def _check_default_assignee(isp_id: int, assignee_id: int | None) -> None:
    """A type's default assignee: an active user of the ISP (422 otherwise)."""
    if assignee_id is None:
        return
    found = db.session.scalar(
        select(User.id).where(User.id == assignee_id, User.isp_id == isp_id, User.is_active)
    )
    if found is None:
        raise ValidationError({"default_assignee_id": ["No active user of your ISP."]})


def assignable_user(user_id: int | None, isp_id: int, branch_id: int) -> int | None:
    """The user, if they can take a ticket of this ISP and branch: active, of the ISP, and
    reaching the branch (None otherwise, and for no user)."""
    if user_id is None:
        return None
    return db.session.scalar(
        select(User.id).where(
            User.id == user_id, User.isp_id == isp_id, User.is_active, assignable_to(branch_id)
        )
    )


TYPE = "/<int:type_id>"


@types_bp.get("")
@token_required
@types_bp.arguments(ticket_scope_args, location="query")
@types_bp.response(200, TicketTypeOut(many=True))
@types_bp.errors(403)
def list_types(_scope):
    """The ISP's ticket types, active or not, by key."""
    scope = current_scope()
    if ensure_catalogue(scope.isp_id):
        db.session.commit()
    return db.session.scalars(
        select(TicketType).where(TicketType.isp_id == scope.isp_id).order_by(TicketType.key)
    ).all()


@types_bp.post("")
@token_required
@types_bp.arguments(ticket_scope_args, location="query")
@types_bp.arguments(ticket_type_in)
@types_bp.response(201, TicketTypeOut, message="Ticket type created successfully")
@types_bp.errors(403, 409)
def create_type(_scope, data):
    """Add a ticket type (admins): its key is what tickets name, and never changes."""
    scope = current_scope()
    scope.require_admin()
    ensure_catalogue(scope.isp_id)
    values = without_scope(data)
    _check_default_assignee(scope.isp_id, values.get("default_assignee_id"))
    taken = select(TicketType.id).where(
        TicketType.isp_id == scope.isp_id, TicketType.key == values["key"]
    )
    if db.session.scalar(taken) is not None:
        abort(409, "The ISP already has a ticket type with this key.")
    kind = TicketType(isp_id=scope.isp_id, **values)
    db.session.add(kind)
    db.session.commit()
    return kind


@types_bp.put(TYPE)
@token_required
@types_bp.arguments(ticket_scope_args, location="query")
@types_bp.arguments(ticket_type_update_in)
@types_bp.response(200, TicketTypeOut, message="Ticket type updated successfully")
@types_bp.errors(403, 404)
def update_type(_scope, changes, type_id: int):
    """Change a ticket type's name, default priority or assignee, or (de)activate it; an
    inactive type stays on its tickets, and new ones cannot take it. `other` stays active."""
    scope = current_scope()
    scope.require_admin()
    kind = db.session.scalar(
        select(TicketType)
        .where(TicketType.id == type_id, TicketType.isp_id == scope.isp_id)
        .with_for_update()
    )
    if kind is None:
        abort(404, "Ticket type not found.")
    changes = without_scope(changes)
    if kind.key == DEFAULT_TYPE and changes.get("active") is False:
        raise ValidationError({"active": ["other is the type of tickets made without one."]})
    _check_default_assignee(scope.isp_id, changes.get("default_assignee_id"))
    for name, value in changes.items():
        setattr(kind, name, value)
    db.session.commit()
    return kind


# --- SLA policies ---------------------------------------------------------------------------


@policies_bp.get("")
@token_required
@policies_bp.arguments(sla_policy_args, location="query")
@policies_bp.response(200, SlaPolicyOut(many=True))
@policies_bp.errors(403)
def list_policies(args):
    """The ISP's SLA policies (one type's, with `type`), by type and priority."""
    scope = current_scope()
    query = select(SlaPolicy).where(SlaPolicy.isp_id == scope.isp_id)
    if "type" in args:
        query = query.where(SlaPolicy.type == args["type"])
    return db.session.scalars(query.order_by(SlaPolicy.type, SlaPolicy.priority)).all()


POLICY = "/<string:type_key>/<int:priority>"


@policies_bp.get(POLICY)
@token_required
@policies_bp.arguments(ticket_scope_args, location="query")
@policies_bp.response(200, SlaPolicyOut)
@policies_bp.errors(403, 404)
def get_policy(_scope, type_key: str, priority: int):
    """The policy of one ticket type and priority (404 when it has none)."""
    scope = current_scope()
    policy = db.session.get(SlaPolicy, (scope.isp_id, type_key, priority))
    if policy is None:
        abort(404, "No SLA policy for this type and priority.")
    return policy


@policies_bp.put(POLICY)
@token_required
@policies_bp.arguments(ticket_scope_args, location="query")
@policies_bp.arguments(sla_policy_in)
@policies_bp.response(200, SlaPolicyOut, message="SLA policy saved successfully", also=(201,))
@policies_bp.errors(403, 404)
def put_policy(_scope, data, type_key: str, priority: int):
    """Set the deadlines of one ticket type and priority (admins): 201 when it makes the
    policy, 200 when it replaces it. New tickets of them, and tickets that change to them,
    take the policy's deadlines; tickets that have theirs keep them."""
    scope = current_scope()
    scope.require_admin()
    if type_of(scope.isp_id, type_key) is None:
        abort(404, "Ticket type not found.")
    values = without_scope(data)
    values["holidays"] = sorted(day.isoformat() for day in values.get("holidays") or ())
    values.setdefault("business_hours", None)
    policy = db.session.get(SlaPolicy, (scope.isp_id, type_key, priority), with_for_update=True)
    created = policy is None
    if created:
        policy = SlaPolicy(isp_id=scope.isp_id, type=type_key, priority=priority)
        db.session.add(policy)
    for name, value in values.items():
        setattr(policy, name, value)
    db.session.commit()
    return (policy, 201) if created else policy


@policies_bp.delete(POLICY)
@token_required
@policies_bp.arguments(ticket_scope_args, location="query")
@policies_bp.response(200, message="SLA policy deleted successfully")
@policies_bp.errors(403, 404)
def delete_policy(_scope, type_key: str, priority: int):
    """Remove a policy (admins): tickets keep the deadlines it gave them."""
    scope = current_scope()
    scope.require_admin()
    policy = db.session.get(SlaPolicy, (scope.isp_id, type_key, priority), with_for_update=True)
    if policy is None:
        abort(404, "No SLA policy for this type and priority.")
    db.session.delete(policy)
    db.session.commit()


# --- Tags -----------------------------------------------------------------------------------


@tags_bp.get("")
@token_required
@tags_bp.arguments(tag_args, location="query")
@tags_bp.response(200, TagOut(many=True))
@tags_bp.errors(403)
def list_tags(args):
    """The tags of the live tickets within your reach (one branch's with branch_id), with
    how many carry each, most used first."""
    scope = current_scope()
    count = func.count().label("count")
    query = (
        select(TicketTag.tag, count)
        .join(Ticket, Ticket.id == TicketTag.ticket_id)
        .where(TicketTag.isp_id == scope.isp_id, tickets_within(scope.kind))
        .group_by(TicketTag.tag)
        .order_by(count.desc(), TicketTag.tag)
        .limit(1000)
    )
    if "branch_id" in args:
        query = query.where(Ticket.branch_id == args["branch_id"])
    if "q" in args:
        query = query.where(TicketTag.tag.startswith(args["q"], autoescape=True))
    rows = db.session.execute(query, scope.params()).all()
    return [{"tag": tag, "count": n} for tag, n in rows]


# --- The sweep ------------------------------------------------------------------------------

# Tickets a sweep handles per transaction.
BATCH = 500


def sweep(now=None) -> dict:
    """Close the resolved tickets whose ISP's auto_close_days have passed, and send the SLA
    events that have fallen due; each ticket in a short transaction of its batch. Found over
    indexes (ix_tickets_resolved, ix_tickets_sla_next), never by scanning tickets. A second
    sweep at once finds nothing to do."""
    now = now or utcnow()
    return {"closed": _auto_close(now), "sla_events": _sla_events(now)}


def _auto_close(now) -> int:
    """Resolved tickets past their ISP's auto_close_days, closed as the system."""
    custom = dict(db.session.execute(select(IspSettings.isp_id, IspSettings.auto_close_days)).all())
    default = IspSettings.__table__.c.auto_close_days.default.arg
    groups: dict[int, list[int]] = {}
    for isp_id, days in custom.items():
        groups.setdefault(days, []).append(isp_id)
    closed = 0
    for days in sorted({default, *groups}):
        bound = now - timedelta(days=days)
        query = select(Ticket).where(
            Ticket.status == TicketStatus.RESOLVED,
            Ticket.deleted_at.is_(None),
            Ticket.resolved_at <= bound,
        )
        mine = groups.get(days, [])
        if days == default:
            others = [isp for isp in custom if custom[isp] != default]
            if others:
                query = query.where(Ticket.isp_id.not_in(others))
        else:
            query = query.where(Ticket.isp_id.in_(mine))
        closed += _in_batches(query.order_by(Ticket.id), _close)
    return closed


def _close(ticket: Ticket) -> bool:
    ticket.change_status(TicketStatus.CLOSED, Actor(ticket.created_by_id, system=True))
    return True


def _sla_events(now) -> int:
    query = (
        select(Ticket)
        .where(Ticket.sla_next_at.is_not(None), Ticket.sla_next_at <= now)
        .order_by(Ticket.id)
    )
    return _in_batches(query, lambda ticket: _send_due(ticket, now))


# (event, its deadline's column, its warning's column, whether it is a warning)
_DUE = (
    (SlaEvent.RESPONSE_WARNED, "response_due_at", "response_warn_at", True),
    (SlaEvent.RESPONSE_BREACHED, "response_due_at", "response_due_at", False),
    (SlaEvent.RESOLUTION_WARNED, "due_at", "due_warn_at", True),
    (SlaEvent.RESOLUTION_BREACHED, "due_at", "due_at", False),
)


def _send_due(ticket: Ticket, now) -> bool:
    """The ticket's SLA events that have fallen due, each once: a breach, or a warning of a
    deadline not yet missed (one already missed gets its breach alone)."""
    running = (TicketStatus.OPEN, TicketStatus.IN_PROGRESS)
    if ticket.deleted_at is not None or ticket.status not in running:
        ticket.sla_next_at = None
        return False
    sent = 0
    for event, deadline, moment, warning in _DUE:
        if ticket.sla_sent & event:
            continue
        if event in (SlaEvent.RESPONSE_WARNED, SlaEvent.RESPONSE_BREACHED) and (
            ticket.first_response_at is not None
        ):
            continue
        at = getattr(ticket, moment)
        if at is None or as_utc(at) > now:
            continue
        ticket.sla_sent |= event
        due = getattr(ticket, deadline)
        if warning and as_utc(due) <= now:
            continue  # missed already: its breach says so
        action = HistoryAction.SLA_WARNING if warning else HistoryAction.SLA_BREACHED
        ticket.record(action, Actor(ticket.created_by_id, system=True), deadline, None, due)
        sent += 1
    ticket.plan_sla_events()
    return sent


def _in_batches(query, handle) -> int:
    """Run `handle` on each ticket the query finds, BATCH at a time, each batch locked and
    committed on its own (rows another transaction holds are left to the next sweep)."""
    done, last = 0, 0
    while True:
        batch = db.session.scalars(
            query.where(Ticket.id > last).limit(BATCH).with_for_update(skip_locked=True)
        ).all()
        if not batch:
            return done
        for ticket in batch:
            done += int(handle(ticket) or 0)
        last = max(ticket.id for ticket in batch)
        db.session.commit()


@desk_cli.command("sweep")
@click.option(
    "--every",
    type=click.IntRange(1, 86_400),
    default=None,
    help="Sweep again every this many seconds, until stopped (the Procfile's clock).",
)
def sweep_command(every):
    """Close resolved tickets past auto_close_days and send the SLA's events. Run it every
    minute or so: from a scheduler (cron), or as a process with --every 60."""
    while True:
        done = sweep()
        click.echo(f"closed {done['closed']} tickets, sent {done['sla_events']} SLA events")
        db.session.remove()
        if every is None:
            return
        time.sleep(every)
