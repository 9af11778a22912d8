"""One change to many tickets (POST /tickets/bulk): each ticket in its own savepoint, with its
history and events as if it were changed alone, and within the caller's reach only."""

from marshmallow import ValidationError
from sqlalchemy.exc import DBAPIError, IntegrityError
from werkzeug.exceptions import HTTPException

from . import incidents, queries
from .extensions import db
from .models import Ticket, TicketKind
from .schemas import ticket_list_args
from .scope import Scope

# A filter may reach this many tickets; beyond, the caller narrows it.
FILTER_LIMIT = 10_000


def matching_ids(scope: Scope, filters: dict) -> list[int]:
    """The ids of the tickets the list's filters find in one branch (the caller's, or the
    filter's branch_id), oldest first; 422 beyond FILTER_LIMIT."""
    if "deleted" in filters:  # a bulk changes live tickets only
        raise ValidationError({"filter": {"deleted": ["Bulk changes live tickets only."]}})
    given = {name: _as_query(value) for name, value in filters.items()}
    for name in ("page", "per_page", "cursor", "sort"):
        given.pop(name, None)
    given.setdefault("branch_id", str(scope.branch_id))
    given.setdefault("isp_id", str(scope.isp_id))
    given.setdefault("user_id", str(scope.claimable_user_id))
    try:
        args = ticket_list_args.load(given)
    except ValidationError as err:
        raise ValidationError({"filter": err.messages}) from None
    scope.check(args)
    ids = queries.matching_ids(scope, args, FILTER_LIMIT + 1)
    if len(ids) > FILTER_LIMIT:
        message = f"The filter finds more than {FILTER_LIMIT:,} tickets: narrow it."
        raise ValidationError({"filter": [message]})
    return ids


def _as_query(value) -> str:
    """A filter's value as the list's query string writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return str(value)


def apply(scope: Scope, ids: list[int], changes: dict, reply: dict | None, check) -> list:
    """Change each ticket in its own savepoint; a result per id, in order."""
    from .tickets import get_ticket_or_404  # the views' own lookup (404 out of reach)

    results = []
    for ticket_id in ids:
        savepoint = db.session.begin_nested()
        try:
            ticket = get_ticket_or_404(scope, ticket_id)
            _change(scope, ticket, changes, reply, check)
            db.session.flush()
            savepoint.commit()
            results.append({"id": ticket_id, "status": 200, "message": "Changed."})
        except ValidationError as err:
            savepoint.rollback()
            results.append({"id": ticket_id, "status": 422, "message": _first(err.messages)})
        except HTTPException as err:
            savepoint.rollback()
            results.append({"id": ticket_id, "status": err.code, "message": err.description})
        except (IntegrityError, DBAPIError):
            savepoint.rollback()
            message = "The ticket changed meanwhile: try it again."
            results.append({"id": ticket_id, "status": 409, "message": message})
    return results


def _change(scope: Scope, ticket: Ticket, changes: dict, reply: dict | None, check) -> None:
    """What a bulk does to one ticket, as the single-ticket endpoints do it."""
    edits = {name: changes[name] for name in ("priority", "assignee_id") if name in changes}
    check(edits, ticket.isp_id, ticket.branch_id, ticket)
    ticket.edit(edits, scope.actor)
    if "status" in changes:
        old = ticket.status
        ticket.change_status(changes["status"], scope.actor)
        if ticket.kind == TicketKind.INCIDENT and old != ticket.status:
            incidents.status_changed(ticket, old, None, scope.actor)
    if reply is not None:
        ticket.add_reply(reply["message"], reply["internal"], scope.actor)
        if ticket.kind == TicketKind.INCIDENT and not reply["internal"]:
            incidents.copy_reply(ticket, reply["message"], scope.actor)


def _first(messages) -> str:
    """A validation error's first message, named after its field."""
    if isinstance(messages, dict):
        name, inner = next(iter(messages.items()))
        return f"{name}: {_first(inner)}"
    if isinstance(messages, list) and messages:
        return _first(messages[0])
    return str(messages)
