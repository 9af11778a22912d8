"""Read queries of the desk: each selects only the columns its answer shows, as plain rows,
within the caller's scope (scope.py)."""

import re
from functools import cache

from marshmallow import ValidationError
from psycopg.rows import dict_row, tuple_row
from sqlalchemy import (
    JSON,
    ColumnElement,
    DateTime,
    Integer,
    Select,
    Text,
    and_,
    bindparam,
    case,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased
from sqlalchemy.sql.functions import FunctionElement

from . import cursors
from .extensions import db
from .fastpath import answer_columns, json_object, json_text, spliced
from .models import (
    DEFAULT_TYPES,
    NETWORK_KINDS,
    OPEN_STATUSES,
    SEARCH_DOCUMENT,
    SYSTEM_NAME,
    ApiKey,
    NetworkObject,
    Subscriber,
    SubscriberNetwork,
    Ticket,
    TicketCount,
    TicketHistory,
    TicketLink,
    TicketPriority,
    TicketReply,
    TicketStatus,
    TicketTag,
    TicketType,
    User,
    utcnow,
)
from .responses import Page
from .schemas import NetworkRefOut, ReplyOut, TicketOut, TicketSummaryOut, search_words
from .scope import Scope, tickets_within

# Fetch Ticket shows the first replies; the rest are a page away (GET .../replies).
REPLIES_SHOWN = 100
# A filtered list counts at most this many matches (beyond: meta.total_exact is false).
COUNT_CAP = 10_000


def person(user_id, key_id, system=None, subscriber=None):
    """The user an answer shows as having acted: none when it was an API key (user_id is then
    the key's creator, kept for the record), the service itself or the subscriber."""
    if system is None:
        return case((key_id.is_(None), user_id))
    if subscriber is None:
        return case((and_(key_id.is_(None), not_(system)), user_id))
    return case((and_(key_id.is_(None), not_(system), subscriber.is_(None)), user_id))


def actor_name(row_model):
    """The name an answer shows for who wrote a reply or a history entry: the service's, the
    subscriber's, an API key's, or the user's."""
    return case(
        (row_model.system, SYSTEM_NAME),
        (row_model.author_name.is_not(None), row_model.author_name),
        else_=func.coalesce(ApiKey.name, User.name),
    )


def author(row_model):
    """Which side wrote a reply or a history entry (ReplyOut's author)."""
    return case((row_model.author_name.is_not(None), literal("subscriber")), else_=literal("staff"))


class links_of(FunctionElement):
    """A ticket's links (its id the argument) as the JSON text of NetworkRefOut items, in
    the order they were given, written by the database: `[]` when it has none."""

    type = Text()
    inherit_cache = True
    name = "links_of"


def _ref_members(alias: str) -> str:
    """The members of NetworkRefOut's JSON object, in its order, from the object `alias`."""
    return ", ".join(f"'{name}', {alias}.{name}" for name in NetworkRefOut().dump_fields)


@compiles(links_of, "postgresql")
def _links_on_postgresql(element, compiler, **kw) -> str:
    ticket = compiler.process(element.clauses, **kw)
    return (
        f"(SELECT coalesce(json_agg(json_build_object({_ref_members('o')}) "
        "ORDER BY l.position), '[]'::json)::text FROM ticket_links AS l "
        f"JOIN network_objects AS o ON o.id = l.object_id WHERE l.ticket_id = {ticket})"
    )


@compiles(links_of, "sqlite")
def _links_on_sqlite(element, compiler, **kw) -> str:
    ticket = compiler.process(element.clauses, **kw)
    return (
        f"(SELECT json_group_array(json_object({_ref_members('o')})) FROM "
        "(SELECT n.kind, n.external_id FROM ticket_links AS l JOIN network_objects AS n "
        f"ON n.id = l.object_id WHERE l.ticket_id = {ticket} ORDER BY l.position) AS o)"
    )


class breached_of(FunctionElement):
    """A ticket's SLA breaches as the JSON of BreachedOut: a deadline is breached when what
    stopped its clock (the first response; the resolution; a wait on the subscriber, which
    pauses it) or, while it runs, the moment of the request (parameter sla_now) is past it."""

    type = JSON()
    inherit_cache = True
    name = "breached_of"


def _breaches() -> tuple:
    """The two breaches as SQL conditions over the tickets row."""
    now = bindparam("sla_now", type_=DateTime(timezone=True))
    # Constants written in the SQL: anonymous parameters could clash with the filters' names.
    code = {status: literal_column(str(int(status))) for status in TicketStatus}
    waiting = Ticket.status == code[TicketStatus.WAITING]
    finished = func.coalesce(Ticket.resolved_at, Ticket.closed_at)
    done = or_(
        Ticket.status == code[TicketStatus.RESOLVED], Ticket.status == code[TicketStatus.CLOSED]
    )
    stopped = case((waiting, Ticket.waiting_since), (done, func.coalesce(finished, now)), else_=now)
    response = and_(
        Ticket.response_due_at.is_not(None),
        func.coalesce(Ticket.first_response_at, stopped) > Ticket.response_due_at,
    )
    resolution = and_(Ticket.due_at.is_not(None), stopped > Ticket.due_at)
    return response, resolution


@compiles(breached_of, "postgresql")
def _breached_on_postgresql(element, compiler, **kw) -> str:
    response, resolution = (compiler.process(c, **kw) for c in _breaches())
    return f"json_build_object('response', {response}, 'resolution', {resolution})"


@compiles(breached_of, "sqlite")
def _breached_on_sqlite(element, compiler, **kw) -> str:
    response, resolution = (compiler.process(c, **kw) for c in _breaches())
    flag = "json(CASE WHEN {} THEN 'true' ELSE 'false' END)"
    return (
        f"json_object('response', {flag.format(response)}, 'resolution', {flag.format(resolution)})"
    )


Assignee = aliased(User, name="assignee")
# The fields of a ticket's answers that are not the ticket's own columns.
TICKET_COLUMNS = {
    "subscriber_name": Subscriber.name,
    "assignee_name": Assignee.name,
    "created_by": person(Ticket.created_by_id, Ticket.created_by_key_id),
    "replies_total": Ticket.reply_count,
    "links": links_of(Ticket.id),
    "breached": breached_of(),
}


SUMMARY = answer_columns(TicketSummaryOut, Ticket, TICKET_COLUMNS)  # never the description
_SUMMARY_NAMES = [column.name for column in SUMMARY]
DETAIL = [*answer_columns(TicketOut, Ticket, TICKET_COLUMNS, besides={"replies"}), Ticket.version]


def _named(query: Select) -> Select:
    """Join the names a ticket answer shows: its subscriber's and its assignee's."""
    return query.outerjoin(Subscriber, Subscriber.id == Ticket.subscriber_id).outerjoin(
        Assignee, Assignee.id == Ticket.assignee_id
    )


def page_meta(page: int, per_page: int, total: int) -> dict:
    return {"page": page, "per_page": per_page, "total": total, "pages": -(-total // per_page)}


def page_of(model, args: dict, *conditions, order_by, options=()) -> Page:
    """One page of a model's rows that meet the conditions, with the list's meta (the lists
    of subscribers, users and webhooks)."""
    page, per_page = args["page"], args["per_page"]
    rows = db.session.scalars(
        select(model)
        .where(*conditions)
        .options(*options)
        .order_by(*order_by)
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    total = db.session.scalar(select(func.count()).select_from(model).where(*conditions))
    return Page(rows, page_meta(page, per_page, total))


# --- The ticket list ------------------------------------------------------------------------


def ticket_page(scope: Scope, args: dict) -> Page:
    """One page of a branch's tickets, filtered and sorted as the list's arguments say: by
    page number, or after a cursor (keyset: a deep page costs what the first costs).

    The statement depends only on the list's shape (which filters, which sort, the caller's
    role...), never on its values: it is built once per shape, its values bound as parameters.
    """
    shape, params = _list_shape(scope, args)
    params["sla_now"] = utcnow()
    page, per_page, cursor = args["page"], args["per_page"], args.get("cursor")
    params["limit"] = per_page + 1  # one more says whether a next page exists
    params["offset"] = 0 if cursor else (page - 1) * per_page
    rows = fetch_rows(_list_statement(shape), params, as_tuples=True)
    items = rows[:per_page]
    total, exact = _total(shape, params)
    meta = page_meta(None if cursor else page, per_page, total)
    meta["total_exact"] = exact
    meta["next_cursor"] = None
    if len(rows) > per_page:
        last = dict(zip(_SUMMARY_NAMES, items[-1], strict=True))
        meta["next_cursor"] = cursors.encode(args, last)
    return Page(items, meta)


def matching_ids(scope: Scope, args: dict, limit: int) -> list[int]:
    """The ids of the tickets the list's arguments find (its own conditions, so the two never
    disagree), oldest first, at most `limit` of them."""
    shape, params = _list_shape(scope, args)
    return list(db.session.scalars(_ids_statement(shape), {**params, "ids_limit": limit}))


@cache
def _ids_statement(shape: tuple) -> Select:
    return (
        select(Ticket.id)
        .where(*_conditions(shape))
        .order_by(Ticket.id)
        .limit(bindparam("ids_limit"))
    )


# The filters whose totals the kept counts give (with none but them, the total is exact).
COUNTED = ("status", "priority")
_PAGING = {"isp_id", "branch_id", "user_id", "page", "per_page", "sort", "cursor"}


def _list_shape(scope: Scope, args: dict) -> tuple[tuple, dict]:
    """What the list's statement depends on (hashable), and the values to bind to it."""
    params = {**scope.params(), "branch_id": args["branch_id"]}
    filters: list = []
    for name in COUNTED:
        if name in args:
            filters.append((name, len(args[name])))
            params.update(_codes(name, args[name]))
    for name in ("subscriber_id", "created_from", "created_to", "updated_since"):
        if name in args:
            filters.append(name)
            params[name] = args[name]
    if "assignee_id" in args:
        assignee = args["assignee_id"]
        filters.append("unassigned" if assignee == "none" else "assignee_id")
        if assignee == "me" and scope.principal_id is None:
            raise ValidationError({"assignee_id": ['An API key is nobody: "me" names no user.']})
        if assignee != "none":
            params["assignee_id"] = scope.principal_id if assignee == "me" else assignee
    if "overdue" in args:
        filters.append("overdue" if args["overdue"] else "not_overdue")
        params["now"] = utcnow()
    if "q" in args:
        terms = search_words(args["q"])
        filters.append(("q", len(terms)))
        params.update(_search_params(terms))
    if "kind" in args:
        filters.append("kind")
        params["kind"] = args["kind"]
    if "type" in args:
        _known_types(scope.isp_id, args["type"])
    for name in ("type", "tag", "tag_any"):
        if name in args:
            filters.append((name, len(args[name])))
            params.update({f"{name}_{n}": value for n, value in enumerate(args[name])})
    if "link" in args:
        filters.append("link")
        params["link_id"] = _named_object(scope, args["link"], "link").id
    if "under" in args:
        filters.append("under")
        params["under_path"] = _named_object(scope, args["under"], "under").path + "%"
    at = None
    if "cursor" in args:
        value, params["cursor_id"] = cursors.position(args, args["cursor"])
        at = "null" if value is None else "value"
        if value is not None:
            params["cursor_value"] = value
    shape = (
        db.session.get_bind().dialect.name,
        scope.kind,
        args.get("deleted") == "only",
        args["sort"],
        tuple(filters),
        at,
        # Whether the total is counted (capped) rather than summed from the kept counts.
        not (set(args) - _PAGING <= set(COUNTED)) or args.get("deleted") == "only",
    )
    return shape, params


@cache
def _list_statement(shape: tuple) -> Select:
    """The page's statement for one shape of the list (see _list_shape)."""
    _dialect, _kind, _deleted, sort, _filters, at, _capped = shape
    position = [cursors.after(sort, at == "null")] if at else []
    return (
        _named(select(*SUMMARY))
        .where(*_conditions(shape), *position)
        .order_by(*_order(sort))
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )


def _conditions(shape: tuple) -> list[ColumnElement[bool]]:
    """The list's WHERE: the caller's scope, the branch, and each filter, all parameters."""
    dialect, kind, deleted, _sort, filters, _at, _capped = shape
    conditions = [
        tickets_within(kind, deleted=deleted),
        Ticket.branch_id == bindparam("branch_id", type_=Integer),
    ]
    for name in filters:
        if name[0] in COUNTED:
            conditions.append(_one_of(getattr(Ticket, name[0]), *name))
        elif name == "unassigned":
            conditions.append(Ticket.assignee_id.is_(None))
        elif name in ("subscriber_id", "assignee_id"):
            conditions.append(getattr(Ticket, name) == bindparam(name, type_=Integer))
        elif name == "created_from":
            conditions.append(Ticket.created_at >= bindparam(name, type_=DateTime(True)))
        elif name == "created_to":  # just past the bound given
            conditions.append(Ticket.created_at < bindparam(name, type_=DateTime(True)))
        elif name == "updated_since":
            conditions.append(Ticket.updated_at >= bindparam(name, type_=DateTime(True)))
        elif name == "overdue":
            conditions.append(overdue(bindparam("now", type_=DateTime(True))))
        elif name == "not_overdue":
            conditions.append(not_overdue(bindparam("now", type_=DateTime(True))))
        elif name == "kind":
            conditions.append(Ticket.kind == bindparam("kind", type_=Text))
        elif name[0] == "type":
            conditions.append(Ticket.type.in_(_texts(*name)))
        elif name[0] == "tag":  # every one of them
            conditions += [Ticket.id.in_(_tagged([tag])) for tag in _texts(*name)]
        elif name[0] == "tag_any":
            conditions.append(Ticket.id.in_(_tagged(_texts(*name))))
        elif name == "link":
            linked = select(TicketLink.ticket_id).where(
                TicketLink.object_id == bindparam("link_id", type_=Integer)
            )
            conditions.append(Ticket.id.in_(linked))
        elif name == "under":
            conditions.append(_under(bindparam("under_path", type_=Text)))
        else:  # ("q", number of terms)
            conditions.append(matches(name[1], dialect))
    return conditions


def _known_types(isp_id: int, keys: list[str]) -> None:
    """422 on `type` unless the ISP's catalogue has every key (active or not: tickets keep a
    retired type; an ISP that has not used its catalogue yet has the defaults)."""
    known = set(
        db.session.scalars(select(TicketType.key).where(TicketType.isp_id == isp_id)).all()
    ) or {key for key, _, _ in DEFAULT_TYPES}
    unknown = [key for key in keys if key not in known]
    if unknown:
        message = f"No ticket type with the key {', '.join(unknown)} (GET /api/v1/ticket-types)."
        raise ValidationError({"type": [message]})


def _texts(name: str, count: int) -> list:
    """`count` text parameters name_0, name_1..."""
    return [bindparam(f"{name}_{n}", type_=Text) for n in range(count)]


def _tagged(tags: list) -> Select:
    """The ids of the scope's ISP's tickets that carry one of these tags."""
    return select(TicketTag.ticket_id).where(
        TicketTag.isp_id == bindparam("scope_isp_id", type_=Integer), TicketTag.tag.in_(tags)
    )


UNKNOWN = "No network object of this ISP with this kind and external_id."


def parse_ref(text: str, field: str) -> tuple[str, str]:
    """A "kind:external_id" of a query string (422 on `field` when it is not one)."""
    kind, colon, external_id = text.partition(":")
    if not colon or kind not in NETWORK_KINDS or not external_id:
        message = f"Use kind:external_id, kind one of {', '.join(NETWORK_KINDS)}."
        raise ValidationError({field: [message]})
    return kind, external_id


def _named_object(scope: Scope, ref: str, field: str):
    """The object of the caller's ISP a filter names as kind:external_id (a retired one too:
    tickets keep their links to it); 422 on `field` when there is none."""
    kind, external_id = parse_ref(ref, field)
    found = db.session.scalar(
        select(NetworkObject).where(
            NetworkObject.isp_id == scope.isp_id,
            NetworkObject.kind == kind,
            NetworkObject.external_id == external_id,
        )
    )
    if found is None:
        raise ValidationError({field: [UNKNOWN]})
    return found


def _under(path) -> ColumnElement[bool]:
    """Tickets linked to an object at or below the one with this path (a LIKE pattern), or
    whose subscriber is served at or below it."""
    below = aliased(NetworkObject, name="below")
    objects = select(below.id).where(
        below.isp_id == bindparam("scope_isp_id", type_=Integer), below.path.like(path)
    )
    linked = select(TicketLink.ticket_id).where(TicketLink.object_id.in_(objects))
    served = select(SubscriberNetwork.subscriber_id).where(SubscriberNetwork.object_id.in_(objects))
    return or_(Ticket.id.in_(linked), Ticket.subscriber_id.in_(served))


def _one_of(column, name: str, count: int) -> ColumnElement[bool]:
    """The column is one of `count` codes, parameters name_0, name_1...: IN with one parameter
    each (one code is "= code", which enters the index of the code; = ANY(array) would not)."""
    return column.in_([bindparam(f"{name}_{n}", type_=Integer) for n in range(count)])


def _codes(name: str, codes: list[int]) -> dict:
    """The values of _one_of's parameters."""
    return {f"{name}_{n}": code for n, code in enumerate(codes)}


def _open() -> ColumnElement[bool]:
    """An open status (written without IN, whose list a prebuilt statement cannot hold)."""
    return or_(*(Ticket.status == int(status) for status in OPEN_STATUSES))


def overdue(now) -> ColumnElement[bool]:
    """Open tickets whose due time has passed."""
    return and_(Ticket.due_at < now, _open())


def not_overdue(now) -> ColumnElement[bool]:
    """Every other ticket: no due time, a due time to come, or no longer open."""
    return or_(Ticket.due_at.is_(None), Ticket.due_at >= now, not_(_open()))


def matches(count: int, dialect: str) -> ColumnElement[bool]:
    """Title or description hold every one of `count` terms (parameters from _search_params),
    the last one as a prefix, case-insensitively.

    PostgreSQL: full-text search on the GIN index, the terms parsed by PostgreSQL's own
    parser (so an address or a hostname stays one token, as in the index). SQLite: each term
    without the punctuation around it ("router," is "router"; "10.0.7.20" stays whole); LIKE
    finds the rows that hold it, and a regular expression keeps those where it starts a word
    and, but for the last, ends one (lower() is made Unicode-aware on connect).
    """
    if dialect == "postgresql":
        vector = literal_column(f"to_tsvector('simple', {_qualified(SEARCH_DOCUMENT)})")
        query = func.plainto_tsquery(SIMPLE, bindparam("q_words", type_=Text)).op("&&")(
            func.to_tsquery(SIMPLE, bindparam("q_last", type_=Text))
        )
        return vector.op("@@")(query)
    document = func.lower(Ticket.title + " " + Ticket.description)
    conditions = []
    for n in range(count):
        conditions += [
            document.like(bindparam(f"q_like_{n}", type_=Text), escape="\\"),
            document.regexp_match(bindparam(f"q_word_{n}", type_=Text)),
        ]
    return and_(*conditions)


def _search_params(terms: list[str]) -> dict:
    """The values of matches()'s parameters for these terms (both databases' forms)."""
    last = "'" + terms[-1].replace("\\", "\\\\").replace("'", "''") + "':*"
    params = {"q_words": " ".join(terms[:-1]), "q_last": last}
    for n, term in enumerate(terms):
        term = PUNCTUATION_AROUND.sub("", term)
        params[f"q_like_{n}"] = f"%{escape_like(term)}%"
        params[f"q_word_{n}"] = (
            WORD_START + re.escape(term) + ("" if n == len(terms) - 1 else WORD_END)
        )
    return params


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


def _total(shape: tuple, params: dict) -> tuple[int, bool]:
    """The list's total and whether it is exact. Live tickets filtered only by status or
    priority are summed from the kept counts (exact, whatever the branch's size); any other
    filter counts its matches up to COUNT_CAP, and beyond that the total is a lower bound."""
    found = fetch_rows(_total_statement(shape), {**params, "cap": COUNT_CAP + 1}, as_tuples=True)
    found = found[0][0]
    capped = shape[-1]
    return (min(found, COUNT_CAP), found <= COUNT_CAP) if capped else (found, True)


@cache
def _total_statement(shape: tuple) -> Select:
    _dialect, _kind, _deleted, _sort, filters, _at, capped = shape
    if capped:
        matches = select(Ticket.id).where(*_conditions(shape)).limit(bindparam("cap")).subquery()
        return select(func.count()).select_from(matches)
    query = select(func.coalesce(func.sum(TicketCount.tickets), 0)).where(
        TicketCount.isp_id == bindparam("scope_isp_id", type_=Integer),
        TicketCount.branch_id == bindparam("branch_id", type_=Integer),
    )
    for name, count in filters:  # only COUNTED ones here
        query = query.where(_one_of(getattr(TicketCount, name), name, count))
    return query


# --- One ticket -----------------------------------------------------------------------------


def ticket_detail(scope: Scope, ticket_id: int) -> dict | None:
    """A live ticket within reach, with its first replies, or None.

    On PostgreSQL one query reads both: the replies as the JSON text of ReplyOut, keys in its
    order and times in the API's format (the contract tests hold it to the schema), which the
    answer embeds as it is. Elsewhere the replies are a second query."""
    together = db.session.get_bind().dialect.name == "postgresql"
    params = {**scope.params(), "ticket_id": ticket_id, "sla_now": utcnow()}
    rows = fetch_rows(_detail(scope.kind, together), params)
    if not rows:
        return None
    if together:  # ReplyOut's JSON as the database wrote it: spliced in, not parsed
        return {**rows[0], "replies": spliced(rows[0]["replies"])}
    return {**rows[0], "replies": reply_rows(ticket_id, limit=REPLIES_SHOWN)}


# A reply as ReplyOut shows it: its columns, and its author's name (a key's, when a key wrote it).
_REPLY_ROWS = (
    select(
        *answer_columns(
            ReplyOut,
            TicketReply,
            {
                "user_name": actor_name(TicketReply),
                "user_id": person(
                    TicketReply.user_id,
                    TicketReply.key_id,
                    TicketReply.system,
                    TicketReply.author_name,
                ),
                "author": author(TicketReply),
            },
        )
    )
    .join(User, User.id == TicketReply.user_id)
    .outerjoin(ApiKey, ApiKey.id == TicketReply.key_id)
)


@cache
def _detail(kind: str, with_replies: bool) -> Select:
    """Fetch Ticket's query, built once per role (the scope differs)."""
    columns = [*DETAIL, _replies_as_json()] if with_replies else DETAIL
    where = (tickets_within(kind), Ticket.id == bindparam("ticket_id"))
    return _named(select(*columns)).where(*where)


def _replies_as_json():
    """The ticket's first replies as one JSON array (PostgreSQL), oldest first."""
    shown = (
        _REPLY_ROWS.where(TicketReply.ticket_id == Ticket.id)
        .order_by(TicketReply.created_at, TicketReply.id)
        .limit(REPLIES_SHOWN)
        .correlate(Ticket)  # the outer query's ticket, two levels up
        .subquery("shown")
    )
    reply = json_object(ReplyOut, shown.c)
    replies = func.json_agg(aggregate_order_by(reply, shown.c.created_at, shown.c.id))
    empty = literal_column("'[]'::json")
    return select(json_text(func.coalesce(replies, empty))).scalar_subquery().label("replies")


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


def fetch_rows(statement, params: dict, *, as_tuples: bool = False) -> list:
    """A prebuilt statement's rows as dicts (or tuples), by the shortest path the database
    allows.

    On PostgreSQL the statement is compiled once and run on the DBAPI cursor, which saves
    SQLAlchemy's result machinery (about 60 us a statement) on the hot reads; listeners of
    before_cursor_execute still see it, and driver errors still become SQLAlchemy's. Elsewhere
    it is an ordinary Core read.
    """
    connection = db.session.connection()
    if connection.dialect.name != "postgresql":
        result = connection.execute(statement, params)
        if as_tuples:
            return [tuple(row) for row in result]
        return [dict(row) for row in result.mappings()]
    dialect = connection.dialect
    sql, constants = _compiled(statement, dialect)
    values = {**constants, **params}
    dbapi_connection = connection.connection.dbapi_connection
    cursor = dbapi_connection.cursor(row_factory=tuple_row if as_tuples else dict_row)
    connection.dispatch.before_cursor_execute(connection, cursor, sql, values, None, False)
    try:
        return cursor.execute(sql, values).fetchall()
    except dialect.loaded_dbapi.Error as err:
        dropped = dialect.is_disconnect(err, dbapi_connection, cursor)
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
    """The statement's SQL and the values of its own constants, compiled once. Keyed on the
    statement itself, which the cache keeps alive (an id() could be a new statement's)."""
    key = (statement, dialect.name)
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
                person(
                    TicketHistory.user_id,
                    TicketHistory.key_id,
                    TicketHistory.system,
                    TicketHistory.author_name,
                ).label("user_id"),
                actor_name(TicketHistory).label("user_name"),
                TicketHistory.created_at,
                TicketHistory.key_id,
                author(TicketHistory).label("author"),
            )
            .join(User, User.id == TicketHistory.user_id)
            .outerjoin(ApiKey, ApiKey.id == TicketHistory.key_id)
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


def branch_stats(scope: Scope, branch_id: int) -> dict:
    """Live tickets of one branch per status and priority, the open unassigned ones (all from
    the kept counts) and the overdue ones (counted on their index)."""
    by_status = {str(int(code)): 0 for code in TicketStatus}
    by_priority = {str(int(code)): 0 for code in TicketPriority}
    unassigned_open = 0
    counts = db.session.execute(
        select(
            TicketCount.status,
            TicketCount.priority,
            TicketCount.assigned,
            TicketCount.type,
            TicketCount.tickets,
        ).where(TicketCount.isp_id == scope.isp_id, TicketCount.branch_id == branch_id)
    )
    # Every type of the catalogue (the defaults, for an ISP that has not used it yet).
    keys = db.session.scalars(
        select(TicketType.key).where(TicketType.isp_id == scope.isp_id).order_by(TicketType.key)
    ).all()
    by_type = dict.fromkeys(keys or sorted(key for key, _, _ in DEFAULT_TYPES), 0)
    for status, priority, assigned, kind, tickets in counts:
        by_status[str(status)] += tickets
        by_priority[str(priority)] += tickets
        by_type[kind] = by_type.get(kind, 0) + tickets
        if status in OPEN_STATUSES and not assigned:
            unassigned_open += tickets
    late = read(
        select(func.count())
        .select_from(Ticket)
        .where(scope.tickets(), Ticket.branch_id == branch_id, overdue(utcnow())),
        scope.params(),
    ).scalar_one()
    return {
        "by_status": by_status,
        "by_priority": by_priority,
        "by_type": by_type,
        "unassigned_open": unassigned_open,
        "overdue": late,
    }
