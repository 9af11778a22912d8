"""Live ticket counts per branch, status, priority and assignment, kept by every flush.

A flush that creates, deletes, restores or moves a ticket between keys adjusts the counts in
the same transaction, so list totals and stats read a handful of rows instead of counting a
branch. Writes that bypass the ORM (the bulk loader) recount with `recount`.
"""

from collections import Counter

from sqlalchemy import delete, event, func, inspect, select

from .extensions import db, insert
from .models import Ticket, TicketCount

KEY = ("isp_id", "branch_id", "status", "priority", "assigned")
_COLUMNS = ("isp_id", "branch_id", "status", "priority", "assignee_id", "deleted_at")


def _key(values: dict) -> tuple | None:
    """The count a ticket with these values belongs to; None for a deleted ticket."""
    if values["deleted_at"] is not None:
        return None
    return (
        values["isp_id"],
        values["branch_id"],
        int(values["status"]),
        int(values["priority"]),
        values["assignee_id"] is not None,
    )


def _before(ticket: Ticket) -> dict:
    state = inspect(ticket)
    values = {}
    for name in _COLUMNS:
        history = state.attrs[name].history
        values[name] = history.deleted[0] if history.deleted else getattr(ticket, name)
    return values


def _now(ticket: Ticket) -> dict:
    return {name: getattr(ticket, name) for name in _COLUMNS}


@event.listens_for(db.session, "after_flush")
def keep_counts(session, _context) -> None:
    deltas: Counter = Counter()
    for ticket in session.new:
        if isinstance(ticket, Ticket) and (key := _key(_now(ticket))) is not None:
            deltas[key] += 1
    for ticket in session.dirty:
        if isinstance(ticket, Ticket) and session.is_modified(ticket):
            before, after = _key(_before(ticket)), _key(_now(ticket))
            if before != after:
                if before is not None:
                    deltas[before] -= 1
                if after is not None:
                    deltas[after] += 1
    for ticket in session.deleted:
        if isinstance(ticket, Ticket) and (key := _key(_before(ticket))) is not None:
            deltas[key] -= 1
    rows = [dict(zip(KEY, key, strict=True), tickets=n) for key, n in sorted(deltas.items()) if n]
    if rows:
        _add(session.connection(), rows)


def _add(connection, rows: list[dict]) -> None:
    """Add each row's `tickets` to its count (created at need). Keys go in one sorted
    statement, so concurrent writers lock counts in the same order and never deadlock."""
    statement = insert(TicketCount, connection).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=KEY, set_={"tickets": TicketCount.tickets + statement.excluded.tickets}
    )
    connection.execute(statement)


def recount(isp_id: int, branch_id: int) -> None:
    """Rebuild one branch's counts from its tickets (after a write that bypassed the ORM)."""
    live = (
        select(
            Ticket.isp_id,
            Ticket.branch_id,
            Ticket.status,
            Ticket.priority,
            Ticket.assignee_id.is_not(None).label("assigned"),
            func.count().label("tickets"),
        )
        .where(Ticket.isp_id == isp_id, Ticket.branch_id == branch_id, Ticket.deleted_at.is_(None))
        .group_by(*KEY[:4], "assigned")
    )
    db.session.execute(
        delete(TicketCount).where(TicketCount.isp_id == isp_id, TicketCount.branch_id == branch_id)
    )
    rows = [dict(row._mapping) for row in db.session.execute(live)]
    if rows:
        _add(db.session.connection(), rows)
