"""Canned replies: saved answers whose bodies are templates, rendered into a reply's message.

A body is a Jinja2 template run in a sandbox narrower than Jinja2's own SandboxedEnvironment:
- it reads the ticket's and the subscriber's fields, the agent's name, and the variables the
  reply gives, and nothing else: no globals, a handful of text filters, attribute access only
  to those fields (never an object's attributes or methods);
- it has no loops, macros, calls, imports, assignments, and no *, ** or % (what could make a
  small template do unbounded work), so rendering is linear in the template and its values;
- what it renders is a reply's message, so at most 10,000 characters.

A template that breaks these rules is 422 when it is saved, naming the line; one that needs a
variable the reply does not give is 422 when it is used.
"""

from flask import abort
from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, Undefined, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment
from marshmallow import ValidationError
from sqlalchemy import Text, and_, cast, func, or_, select

from .extensions import db
from .models import (
    CannedReply,
    CannedScope,
    Subscriber,
    Ticket,
    TicketPriority,
    TicketStatus,
    as_json_value,
)
from .openapi import Blueprint
from .queries import escape_like, page_of
from .schemas import (
    CannedReplyOut,
    PageMeta,
    canned_reply_args,
    canned_reply_in,
    canned_reply_update_in,
    ticket_scope_args,
)
from .scope import Scope, current_scope, without_scope
from .tokens import token_required
from .transport import reject_impossible_ids

bp = Blueprint("canned_replies", __name__, description="Saved answers, for staff to reuse.")
bp.url_value_preprocessor(reject_impossible_ids("Canned reply not found."))
CANNED = "/<int:reply_id>"

MAX_RENDERED = 10_000
# The names a body reads besides the reply's own variables.
OFFERED = ("ticket", "subscriber", "agent")
# What a body may not hold: loops, macros, calls, imports, assignments, blocks, and the
# operators that multiply text.
REFUSED = (
    *(nodes.For, nodes.Macro, nodes.CallBlock, nodes.Call, nodes.FilterBlock, nodes.With),
    *(nodes.Import, nodes.FromImport, nodes.Include, nodes.Extends, nodes.Block),
    *(nodes.Assign, nodes.AssignBlock, nodes.Pow, nodes.Mul, nodes.Mod),
)
FILTERS = ("upper", "lower", "title", "capitalize", "trim", "default", "d", "truncate", "length")
FILTERS += ("first", "last", "string", "int")


class _Sandbox(SandboxedEnvironment):
    """Jinja2's sandbox with attribute and item access narrowed to the offered fields."""

    def getattr(self, obj, attribute):
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return self.unsafe_undefined(obj, attribute)

    def getitem(self, obj, argument):
        if isinstance(obj, dict) and isinstance(argument, str) and argument in obj:
            return obj[argument]
        if isinstance(obj, str) and isinstance(argument, int | slice):
            return obj[argument]
        return self.undefined(obj=obj, name=argument)


def _environment(undefined: type[Undefined]) -> _Sandbox:
    env = _Sandbox(autoescape=False, undefined=undefined, keep_trailing_newline=True)
    env.globals.clear()
    env.filters = {name: env.filters[name] for name in FILTERS}
    env.tests = {name: env.tests[name] for name in ("defined", "undefined", "none", "number")}
    return env


class _Blank(Undefined):
    """A trial render's stand-in for a variable only a reply gives: text, or a number."""

    def __str__(self) -> str:
        return ""

    def __int__(self) -> int:
        return 0

    def __float__(self) -> float:
        return 0.0


STRICT = _environment(StrictUndefined)
TRIAL = _environment(_Blank)


# What a body's failure to render can be, besides a missing variable (UndefinedError).
RENDER_ERRORS = (
    *(SecurityError, TemplateError, TypeError, ValueError, ArithmeticError, LookupError),
    RecursionError,
)
# Jinja's own globals, which the sandbox does not offer: a body naming one is refused (a reply's
# variable of that name would only confuse).
RESERVED = frozenset(("range", "dict", "lipsum", "cycler", "joiner", "namespace"))


def _refused(tree: nodes.Template) -> str | None:
    """What the template holds that a canned reply may not, with its line."""
    for node in tree.find_all(REFUSED):
        return f"line {node.lineno}: {type(node).__name__.lower()} is not allowed in a canned reply"
    for node in tree.find_all(nodes.Name):
        if node.name in RESERVED:
            return f"line {node.lineno}: {node.name} is not offered in a canned reply"
    for node in tree.find_all(nodes.Getattr):
        if node.attr.startswith("_"):
            return f"line {node.lineno}: {node.attr} reaches outside the template's sandbox"
    return None


def check_body(body: str) -> None:
    """422 on `body` unless it is a template a canned reply may hold (see the module)."""
    try:
        tree = STRICT.parse(body)
    except TemplateSyntaxError as err:
        raise ValidationError({"body": [f"line {err.lineno}: {err.message}"]}) from None
    problem = _refused(tree)
    if problem is None:  # a trial on sample fields (the reply's own variables blank)
        try:
            _render(TRIAL, body, _SAMPLE)
        except UndefinedError:
            pass  # what a reply's variables hold is known only when it is used
        except SecurityError as err:
            problem = f"reaches outside the template's sandbox: {err}"
        except TemplateSyntaxError as err:
            problem = f"line {err.lineno}: {err.message}"
        except RENDER_ERRORS as err:
            problem = f"it cannot be rendered: {type(err).__name__}: {err}"
    if problem is not None:
        raise ValidationError({"body": [problem]})


_SAMPLE = {
    "ticket": {
        **dict.fromkeys(("id", "priority", "status"), 1),
        **dict.fromkeys(("title", "description", "type", "status_name", "priority_name"), "Sample"),
        **dict.fromkeys(("created_at", "due_at"), "2030-01-01 00:00:00"),
    },
    "subscriber": dict.fromkeys(("name", "phone", "email"), "Sample"),
    "agent": {"name": "Sample"},
}


def _render(env: _Sandbox, body: str, values: dict) -> str:
    return env.from_string(body).render(values)


def render(canned: CannedReply, ticket: Ticket, agent: str, variables: dict) -> str:
    """The canned reply's text for this ticket (422 on canned_reply_id or variables when it
    cannot be rendered)."""
    clash = set(variables) & set(OFFERED)
    if clash:
        raise ValidationError({"variables": [f"{', '.join(sorted(clash))} is the service's."]})
    subscriber = None
    if ticket.subscriber_id is not None:
        subscriber = db.session.get(Subscriber, ticket.subscriber_id)
    values = {**variables, **_fields(ticket, subscriber, agent)}
    try:
        text = _render(STRICT, canned.body, values).strip()
    except UndefinedError as err:
        raise ValidationError({"variables": [f"The canned reply needs it: {err}."]}) from None
    except RENDER_ERRORS as err:
        message = f"It cannot be rendered: {type(err).__name__}: {err}."
        raise ValidationError({"canned_reply_id": [message]}) from None
    if not text or len(text) > MAX_RENDERED:
        message = f"It renders to {len(text)} characters; a reply has 1 to {MAX_RENDERED}."
        raise ValidationError({"canned_reply_id": [message]})
    return text


def _fields(ticket: Ticket, subscriber: Subscriber | None, agent: str) -> dict:
    """What a body reads: the ticket's, the subscriber's and the agent's fields, as text
    where they are times, "" where they are not set."""

    def text(value):
        return "" if value is None else as_json_value(value)

    return {
        "ticket": {
            "id": ticket.id,
            "title": ticket.title,
            "description": ticket.description,
            "status": int(ticket.status),
            "status_name": _name(TicketStatus, ticket.status),
            "priority": int(ticket.priority),
            "priority_name": _name(TicketPriority, ticket.priority),
            "type": ticket.type,
            "created_at": text(ticket.created_at),
            "due_at": text(ticket.due_at),
        },
        "subscriber": {
            name: text(getattr(subscriber, name, None)) for name in ("name", "phone", "email")
        },
        "agent": {"name": agent},
    }


def _name(codes, code) -> str:
    return codes(code).name.replace("_", " ").capitalize()


# --- Who sees and changes which ---------------------------------------------------------------


def visible(scope: Scope):
    """The canned replies a caller may read and use: the ISP's, their branch's (an admin's:
    every branch's), and their own personal ones (an API key has none)."""
    branch = CannedReply.scope == CannedScope.BRANCH
    if not scope.is_admin:
        branch = and_(branch, CannedReply.branch_id == scope.branch_id)
    mine = and_(
        CannedReply.scope == CannedScope.PERSONAL, CannedReply.owner_id == scope.principal_id
    )
    reach = [CannedReply.scope == CannedScope.ISP, branch]
    if scope.principal_id is not None:
        reach.append(mine)
    return and_(CannedReply.isp_id == scope.isp_id, or_(*reach))


def usable(scope: Scope, canned_reply_id: int) -> CannedReply:
    """A canned reply the caller may use (422 on canned_reply_id otherwise)."""
    found = db.session.scalar(
        select(CannedReply).where(visible(scope), CannedReply.id == canned_reply_id)
    )
    if found is None:
        raise ValidationError({"canned_reply_id": ["No canned reply of yours with this id."]})
    return found


def _may_change(scope: Scope, canned: CannedReply) -> None:
    """403 unless the caller may change it: the ISP's are the admins', a branch's its staff's
    and the admins', a personal one its owner's."""
    if canned.scope == CannedScope.ISP:
        scope.require_admin()
    elif canned.scope == CannedScope.PERSONAL and canned.owner_id != scope.principal_id:
        abort(403, "Only its owner may change a personal canned reply.")


def _get_or_404(scope: Scope, reply_id: int) -> CannedReply:
    found = db.session.scalar(
        select(CannedReply).where(visible(scope), CannedReply.id == reply_id).with_for_update()
    )
    if found is None:
        abort(404, "Canned reply not found.")
    return found


# --- The endpoints ------------------------------------------------------------------------


@bp.get("")
@token_required
@bp.arguments(canned_reply_args, location="query")
@bp.response(200, CannedReplyOut(many=True), meta=PageMeta)
@bp.errors(403)
def list_canned(args):
    """The canned replies you may use, by title; `q` finds words in the title or body (as
    staff type), `tag` those that carry it."""
    scope = current_scope()
    conditions = [visible(scope)]
    if "q" in args:
        pattern = f"%{escape_like(args['q'].lower())}%"
        text = func.lower(CannedReply.title + " " + CannedReply.body)
        conditions.append(text.like(pattern, escape="\\"))
    if "tag" in args:
        conditions.append(cast(CannedReply.tags, Text).like(f'%"{args["tag"]}"%'))
    if "scope" in args:
        conditions.append(CannedReply.scope == args["scope"])
    return page_of(CannedReply, args, *conditions, order_by=(CannedReply.title, CannedReply.id))


@bp.get(CANNED)
@token_required
@bp.arguments(ticket_scope_args, location="query")
@bp.response(200, CannedReplyOut)
@bp.errors(403, 404)
def get_canned(_scope, reply_id: int):
    """One canned reply you may use."""
    scope = current_scope()
    found = db.session.scalar(select(CannedReply).where(visible(scope), CannedReply.id == reply_id))
    if found is None:
        abort(404, "Canned reply not found.")
    return found


@bp.post("")
@token_required
@bp.arguments(ticket_scope_args, location="query")
@bp.arguments(canned_reply_in)
@bp.response(201, CannedReplyOut, message="Canned reply created successfully")
@bp.errors(403)
def create_canned(claims, data):
    """Save a canned reply: the ISP's (admins), a branch's (the one named, by default
    yours), or your own."""
    scope = current_scope()
    values = without_scope(data)
    check_body(values["body"])
    kind = values.pop("scope")
    canned = CannedReply(
        isp_id=scope.isp_id,
        scope=kind,
        created_by_id=scope.principal_id,
        tags=values.pop("tags", []),
        **values,
    )
    if kind == CannedScope.ISP:
        scope.require_admin()
    elif kind == CannedScope.BRANCH:
        canned.branch_id = scope.named_branch(claims, data)
    else:
        canned.owner_id = scope.principal_id
    db.session.add(canned)
    db.session.commit()
    return canned


@bp.put(CANNED)
@token_required
@bp.arguments(ticket_scope_args, location="query")
@bp.arguments(canned_reply_update_in)
@bp.response(200, CannedReplyOut, message="Canned reply updated successfully")
@bp.errors(403, 404)
def update_canned(_scope, changes, reply_id: int):
    """Change a canned reply's title, body or tags."""
    scope = current_scope()
    canned = _get_or_404(scope, reply_id)
    _may_change(scope, canned)
    changes = without_scope(changes)
    if "body" in changes:
        check_body(changes["body"])
    for name, value in changes.items():
        setattr(canned, name, value)
    db.session.commit()
    return canned


@bp.delete(CANNED)
@token_required
@bp.arguments(ticket_scope_args, location="query")
@bp.response(200, message="Canned reply deleted successfully")
@bp.errors(403, 404)
def delete_canned(_scope, reply_id: int):
    """Delete a canned reply (replies made from it keep their text)."""
    scope = current_scope()
    canned = _get_or_404(scope, reply_id)
    _may_change(scope, canned)
    db.session.delete(canned)
    db.session.commit()
