"""Read queries of the desk: each selects only the columns its answer shows, as plain rows,
within the caller's scope (scope.py)."""

import re
from functools import cache

import orjson
from flask_jwt_extended import current_user
from psycopg.rows import dict_row
from sqlalchemy import (
    ColumnElement,
    Select,
    Text,
    and_,
    bindparam,
    cast,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import aliased

from . import cursors
from .extensions import db
from .models import (
    OPEN_STATUSES,
    SEARCH_DOCUMENT,
    Subscriber,
    Ticket,
    TicketCount,
    TicketHistory,
    TicketPriority,
    TicketReply,
    TicketStatus,
    User,
    utcnow,
)
from .responses import Page
from .schemas import search_words
from .scope import scope_params, ticket_scope

# Fetch Ticket shows the first replies; the rest are a page away (GET .../replies).
REPLIES_SHOWN = 100
# A filtered list counts at most this many matches (beyond: meta.total_exact is false).
COUNT_CAP = 10_000

Assignee = aliased(User, name="assignee")
_DESK = (
    Ticket.assignee_id,
    Assignee.name.label("assignee_name"),
    Ticket.due_at,
    Ticket.first_response_at,
    Ticket.resolved_at,
    Ticket.closed_at,
)
_SHARED = (
    Ticket.id,
    Ticket.title,
    Ticket.subscriber_id,
    Subscriber.name.label("subscriber_name"),
    Ticket.priority,
    Ticket.status,
    Ticket.created_at,
    Ticket.isp_id,
    Ticket.branch_id,
    Ticket.updated_at,
    *_DESK,
)
SUMMARY = (*_SHARED, Ticket.deleted_at)  # never the description
DETAIL = (
    *_SHARED,
    Ticket.description,
    Ticket.created_by_id.label("created_by"),
    Ticket.reply_count.label("replies_total"),
    Ticket.version,
)


def _named(query: Select) -> Select:
    """Join the names a ticket answer shows: its subscriber's and its assignee's."""
    return query.outerjoin(Subscriber, Subscriber.id == Ticket.subscriber_id).outerjoin(
        Assignee, Assignee.id == Ticket.assignee_id
    )


def page_meta(page: int, per_page: int, total: int) -> dict:
    return {"page": page, "per_page": per_page, "total": total, "pages": -(-total // per_page)}


def page_of(model, args: dict, *conditions, order_by) -> Page:
    """One page of a model's rows that meet the conditions, with the list's meta (the lists
    of subscribers, users and webhooks)."""
    page, per_page = args["page"], args["per_page"]
    rows = db.session.scalars(
        select(model)
        .where(*conditions)
        .order_by(*order_by)
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    total = db.session.scalar(select(func.count()).select_from(model).where(*conditions))
    return Page(rows, page_meta(page, per_page, total))


# --- The ticket list ------------------------------------------------------------------------


def ticket_page(args: dict) -> Page:
    """One page of a branch's tickets, filtered and sorted as the list's arguments say: by
    page number, or after a cursor (keyset: a deep page costs what the first costs)."""
    deleted = args.get("deleted") == "only"
    conditions = [ticket_scope(deleted=deleted), Ticket.branch_id == args["branch_id"]]
    conditions += _filters(args)
    page, per_page, cursor = args["page"], args["per_page"], args.get("cursor")
    position = [cursors.after(args, cursor)] if cursor else []
    rows = (
        read(
            _named(select(*SUMMARY))
            .where(*conditions, *position)
            .order_by(*_order(args["sort"]))
            .limit(per_page + 1)  # one more says whether a next page exists
            .offset(0 if cursor else (page - 1) * per_page),
            scope_params(),
        )
        .mappings()
        .all()
    )
    items = rows[:per_page]
    total, exact = _total(args, conditions, deleted)
    meta = page_meta(None if cursor else page, per_page, total)
    meta["total_exact"] = exact
    meta["next_cursor"] = cursors.encode(args, items[-1]) if len(rows) > per_page else None
    return Page(items, meta)


def _filters(args: dict) -> list[ColumnElement[bool]]:
    found = []
    for name in ("status", "priority"):
        if name in args:
            found.append(getattr(Ticket, name).in_(args[name]))
    if "subscriber_id" in args:
        found.append(Ticket.subscriber_id == args["subscriber_id"])
    if "assignee_id" in args:
        assignee = args["assignee_id"]
        if assignee == "none":
            found.append(Ticket.assignee_id.is_(None))
        else:
            found.append(Ticket.assignee_id == (current_user.id if assignee == "me" else assignee))
    if "created_from" in args:
        found.append(Ticket.created_at >= args["created_from"])
    if "created_to" in args:
        found.append(Ticket.created_at < args["created_to"])  # just past the bound given
    if "updated_since" in args:
        found.append(Ticket.updated_at >= args["updated_since"])
    if "overdue" in args:
        found.append(overdue() if args["overdue"] else not_overdue())
    if "q" in args:
        found.append(matches(search_words(args["q"])))
    return found


def overdue() -> ColumnElement[bool]:
    """Open tickets whose due time has passed."""
    return and_(Ticket.due_at < utcnow(), Ticket.status.in_(OPEN_STATUSES))


def not_overdue() -> ColumnElement[bool]:
    """Every other ticket: no due time, a due time to come, or no longer open."""
    return or_(
        Ticket.due_at.is_(None), Ticket.due_at >= utcnow(), Ticket.status.not_in(OPEN_STATUSES)
    )


def matches(terms: list[str]) -> ColumnElement[bool]:
    """Title or description hold every term, the last one as a prefix, case-insensitively.

    PostgreSQL: full-text search on the GIN index, the terms parsed by PostgreSQL's own
    parser (so an address or a hostname stays one token, as in the index). SQLite: each term
    without the punctuation around it ("router," is "router"; "10.0.7.20" stays whole); LIKE
    finds the rows that hold it, and a regular expression keeps those where it starts a word
    and, but for the last, ends one (lower() is made Unicode-aware on connect).
    """
    if db.session.get_bind().dialect.name == "postgresql":
        vector = literal_column(f"to_tsvector('simple', {_qualified(SEARCH_DOCUMENT)})")
        last = "'" + terms[-1].replace("\\", "\\\\").replace("'", "''") + "':*"
        query = func.plainto_tsquery(SIMPLE, " ".join(terms[:-1])).op("&&")(
            func.to_tsquery(SIMPLE, last)
        )
        return vector.op("@@")(query)
    document = func.lower(Ticket.title + " " + Ticket.description)
    conditions = []
    for n, term in enumerate(terms, 1):
        term = PUNCTUATION_AROUND.sub("", term)
        pattern = WORD_START + re.escape(term) + ("" if n == len(terms) else WORD_END)
        conditions += [
            document.like(f"%{escape_like(term)}%", escape="\\"),
            document.regexp_match(pattern),
        ]
    return and_(*conditions)


# No letter or digit before, or after: where a word starts, or ends.
WORD_START, WORD_END = r"(?<![^\W_])", r"(?![^\W_])"
PUNCTUATION_AROUND = re.compile(r"^[\W_]+|[\W_]+$")


SIMPLE = literal_column("'simple'")


def _qualified(expression: str) -> str:
    return expression.replace("title", "tickets.title").replace(
        "description", "tickets.description"
    )


def escape_like(word: str) -> str:
    """A text to find as it is with LIKE (escape character: backslash)."""
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _order(sort: str) -> list:
    """The sort column in the requested direction, ties broken on id the same way; tickets
    without a due time come last whichever way due_at is sorted."""
    name = sort.lstrip("-")
    descending = sort.startswith("-")
    column = getattr(Ticket, name)
    first = column.desc() if descending else column.asc()
    if name == "due_at":
        first = first.nulls_last()
    return [first, Ticket.id.desc() if descending else Ticket.id.asc()]


def _total(args: dict, conditions: list, deleted: bool) -> tuple[int, bool]:
    """The list's total and whether it is exact. Live tickets filtered only by status or
    priority are summed from the kept counts (exact, whatever the branch's size); any other
    filter counts its matches up to COUNT_CAP, and beyond that the total is a lower bound."""
    counted = {"status", "priority"}
    paging = {"isp_id", "branch_id", "user_id", "page", "per_page", "sort", "cursor"}
    if deleted or not set(args) - paging <= counted:
        matches = select(Ticket.id).where(*conditions).limit(COUNT_CAP + 1).subquery()
        found = read(select(func.count()).select_from(matches), scope_params()).scalar_one()
        return min(found, COUNT_CAP), found <= COUNT_CAP
    query = select(func.coalesce(func.sum(TicketCount.tickets), 0)).where(
        TicketCount.isp_id == current_user.isp_id, TicketCount.branch_id == args["branch_id"]
    )
    for name in counted & set(args):
        query = query.where(getattr(TicketCount, name).in_(args[name]))
    return read(query).scalar_one(), True


# --- One ticket -----------------------------------------------------------------------------


def ticket_detail(ticket_id: int) -> dict | None:
    """A live ticket within reach, with its first replies, or None.

    On PostgreSQL one query reads both: the replies as the JSON text of ReplyOut, keys in its
    order and times in the API's format (the contract tests hold it to the schema), which the
    answer embeds as it is. Elsewhere the replies are a second query."""
    together = db.session.get_bind().dialect.name == "postgresql"
    params = {**scope_params(), "ticket_id": ticket_id}
    rows = fetch_rows(_detail(current_user.is_admin, together), params)
    if not rows:
        return None
    if together:  # ReplyOut's JSON as the database wrote it: spliced in, not parsed
        return {**rows[0], "replies": orjson.Fragment(rows[0]["replies"])}
    return {**rows[0], "replies": reply_rows(ticket_id, limit=REPLIES_SHOWN)}


# A reply as ReplyOut shows it, with its author's name.
_REPLY_ROWS = select(
    TicketReply.id,
    TicketReply.message,
    User.name.label("user_name"),
    TicketReply.created_at,
    TicketReply.user_id,
    TicketReply.internal,
).join(User, User.id == TicketReply.user_id)


@cache
def _detail(_admin: bool, with_replies: bool) -> Select:
    """Fetch Ticket's query, built once per role (the scope differs)."""
    columns = [*DETAIL, _replies_as_json()] if with_replies else DETAIL
    return _named(select(*columns)).where(ticket_scope(), Ticket.id == bindparam("ticket_id"))


def _replies_as_json():
    """The ticket's first replies as one JSON array (PostgreSQL), oldest first."""
    shown = (
        _REPLY_ROWS.where(TicketReply.ticket_id == Ticket.id)
        .order_by(TicketReply.created_at, TicketReply.id)
        .limit(REPLIES_SHOWN)
        .correlate(Ticket)  # the outer query's ticket, two levels up
        .subquery("shown")
    )
    written = func.to_char(func.timezone("UTC", shown.c.created_at), "YYYY-MM-DD HH24:MI:SS")
    reply = func.json_build_object(
        *("id", shown.c.id, "message", shown.c.message, "user_name", shown.c.user_name),
        *("created_at", written, "user_id", shown.c.user_id, "internal", shown.c.internal),
    )
    replies = func.json_agg(aggregate_order_by(reply, shown.c.created_at, shown.c.id))
    empty = literal_column("'[]'::json")
    text = cast(func.coalesce(replies, empty), Text)
    return select(text).scalar_subquery().label("replies")


_REPLIES = (
    _REPLY_ROWS.where(TicketReply.ticket_id == bindparam("ticket_id"))
    .order_by(TicketReply.created_at, TicketReply.id)
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)


def reply_rows(ticket_id: int, *, limit: int, offset: int = 0) -> list:
    """A ticket's replies and notes, oldest first, with their authors' names."""
    params = {"ticket_id": ticket_id, "limit": limit, "offset": offset}
    return fetch_rows(_REPLIES, params)


def read(statement, params: dict | None = None):
    """Run a read on the session's connection (Core: no ORM layer for plain rows)."""
    return db.session.connection().execute(statement, params)


def fetch_rows(statement, params: dict) -> list[dict]:
    """A prebuilt statement's rows as dicts, by the shortest path the database allows.

    On PostgreSQL the statement is compiled once and run on the DBAPI cursor, which saves
    SQLAlchemy's result machinery (about 60 us a statement) on the hot reads; listeners of
    before_cursor_execute still see it, and driver errors still become SQLAlchemy's. Elsewhere
    it is an ordinary Core read.
    """
    connection = db.session.connection()
    if connection.dialect.name != "postgresql":
        return [dict(row) for row in connection.execute(statement, params).mappings()]
    dialect = connection.dialect
    sql, constants = _compiled(statement, dialect)
    values = {**constants, **params}
    cursor = connection.connection.dbapi_connection.cursor(row_factory=dict_row)
    connection.dispatch.before_cursor_execute(connection, cursor, sql, values, None, False)
    try:
        return cursor.execute(sql, values).fetchall()
    except dialect.loaded_dbapi.Error as err:
        dropped = dialect.is_disconnect(err, connection.connection.dbapi_connection, cursor)
        if dropped:
            connection.invalidate(err)
        raise DBAPIError.instance(
            sql,
            values,
            err,
            dialect.loaded_dbapi.Error,
            hide_parameters=True,
            connection_invalidated=dropped,
            dialect=dialect,
        ) from err
    finally:
        cursor.close()


_COMPILED: dict = {}


def _compiled(statement, dialect) -> tuple[str, dict]:
    """The statement's SQL and the values of its own constants, compiled once."""
    key = (id(statement), dialect.name)
    if key not in _COMPILED:
        compiled = statement.compile(dialect=dialect)
        constants = {name: value for name, value in compiled.params.items() if value is not None}
        _COMPILED[key] = compiled.string, constants
    return _COMPILED[key]


def history_rows(ticket_id: int, *, limit: int, offset: int) -> tuple[list, int]:
    """A page of a ticket's history, oldest first, and how many entries it has."""
    rows = (
        db.session.execute(
            select(
                TicketHistory.id,
                TicketHistory.action,
                TicketHistory.field,
                TicketHistory.old,
                TicketHistory.new,
                TicketHistory.user_id,
                User.name.label("user_name"),
                TicketHistory.created_at,
            )
            .join(User, User.id == TicketHistory.user_id)
            .where(TicketHistory.ticket_id == ticket_id)
            .order_by(TicketHistory.id)
            .limit(limit)
            .offset(offset)
        )
        .mappings()
        .all()
    )
    total = db.session.scalar(
        select(func.count()).select_from(TicketHistory).where(TicketHistory.ticket_id == ticket_id)
    )
    return rows, total


# --- Stats ----------------------------------------------------------------------------------


def branch_stats(isp_id: int, branch_id: int) -> dict:
    """Live tickets of one branch per status and priority, the open unassigned ones (all from
    the kept counts) and the overdue ones (counted on their index)."""
    by_status = {str(int(code)): 0 for code in TicketStatus}
    by_priority = {str(int(code)): 0 for code in TicketPriority}
    unassigned_open = 0
    counts = db.session.execute(
        select(
            TicketCount.status, TicketCount.priority, TicketCount.assigned, TicketCount.tickets
        ).where(TicketCount.isp_id == isp_id, TicketCount.branch_id == branch_id)
    )
    for status, priority, assigned, tickets in counts:
        by_status[str(status)] += tickets
        by_priority[str(priority)] += tickets
        if status in OPEN_STATUSES and not assigned:
            unassigned_open += tickets
    late = read(
        select(func.count())
        .select_from(Ticket)
        .where(ticket_scope(), Ticket.branch_id == branch_id, overdue()),
        scope_params(),
    ).scalar_one()
    return {
        "by_status": by_status,
        "by_priority": by_priority,
        "unassigned_open": unassigned_open,
        "overdue": late,
    }
