"""Marshmallow schemas, named by direction: *In for bodies, *Args for query strings, *Out for
responses. Instances are created once at the bottom; the views declare them on their routes."""

import re
from datetime import UTC, datetime, timedelta

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from .cursors import Cursor
from .delivery import EVENT_TYPES
from .models import (
    LAST_MOMENT,
    MAX_ID,
    TIMESTAMP,
    HistoryAction,
    Role,
    TicketPriority,
    TicketStatus,
)
from .scope import check_scope

MAX_PER_PAGE = 200
DEFAULT_PER_PAGE = 50
MIN_PASSWORD_LENGTH = 8

# C0 controls and DEL, except tab, line feed and carriage return, and the C1 controls (NEL,
# U+0085, among them). NUL is among them: PostgreSQL cannot store it in text, so it must be
# refused here rather than fail at commit. The class is written once and serves both the check
# below and the pattern the document publishes.
CONTROL_CHARACTERS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
# What breaks a line besides those: the Unicode line and paragraph separators too.
LINE_BREAKS = r"\n\r\u2028\u2029"
_DIGITS = re.compile(r"-?[0-9]{1,20}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")


def _refusing(characters: str) -> tuple[re.Pattern, str]:
    """A search for any of these characters, and the ECMA pattern of a text without them."""
    return re.compile(f"[{characters}]"), f"^[^{characters}]*$"


class Timestamp(fields.String):
    """A datetime written "YYYY-MM-DD HH:MM:SS", always in UTC, in and out."""

    def __init__(self, **kwargs):
        metadata = {
            "pattern": r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$",
            "example": "2024-01-15 10:30:00",
        }
        super().__init__(metadata=metadata | kwargs.pop("metadata", {}), **kwargs)

    def _serialize(self, value: datetime | str | None, attr, obj, **kwargs):
        if value is None or isinstance(value, str):  # a string: written so by the database
            return value
        return self.write(value)

    @staticmethod
    def write(value: datetime) -> str:
        """A datetime as the API writes it (the answers' fast path calls this directly)."""
        if value.utcoffset():  # aware and not UTC (naive values are UTC already)
            value = value.astimezone(UTC)
        return value.isoformat(" ", "seconds")[:19]  # TIMESTAMP's text, faster than strftime

    def _deserialize(self, value, attr, data, **kwargs) -> datetime:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            if not _TIMESTAMP.fullmatch(text):
                raise ValueError(text)
            return datetime.strptime(text, TIMESTAMP).replace(tzinfo=UTC)
        except ValueError:
            raise ValidationError('Use "YYYY-MM-DD HH:MM:SS" (UTC).') from None


class QueryTimestamp(Timestamp):
    """A query bound: a full timestamp, or a date "YYYY-MM-DD". As a lower bound, the moment
    itself (a date: its first second); with `upper`, the moment just past it, so that "up to
    10:30:00" takes 10:30:00.9 and "up to a date" takes that whole day."""

    def __init__(self, *, upper: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.upper = upper

    def _deserialize(self, value, attr, data, **kwargs) -> datetime:
        if isinstance(value, str) and _DATE.fullmatch(value):
            try:
                day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
            except ValueError:
                raise ValidationError('Use "YYYY-MM-DD" or "YYYY-MM-DD HH:MM:SS" (UTC).') from None
            return _after(day, timedelta(days=1)) if self.upper else day
        moment = super()._deserialize(value, attr, data, **kwargs)
        return _after(moment, timedelta(seconds=1)) if self.upper else moment


def _after(moment: datetime, step: timedelta) -> datetime:
    """moment + step, or the last moment a timestamp holds when that is past it (an upper
    bound past it is no bound)."""
    return moment + step if moment <= LAST_MOMENT - step else LAST_MOMENT


class Text(fields.String):
    """A string that is trimmed, valid UTF-8 and free of control characters (and of line
    breaks with `single_line`, of slashes with `no_slash`)."""

    def __init__(self, *, single_line: bool = False, no_slash: bool = False, **kwargs):
        refused = CONTROL_CHARACTERS + (LINE_BREAKS if single_line else "")
        self.refused = _refusing(refused)[0]
        pattern = _refusing(refused + ("/" if no_slash else ""))[1]
        super().__init__(metadata={"pattern": pattern} | kwargs.pop("metadata", {}), **kwargs)
        self.single_line, self.no_slash = single_line, no_slash

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError("Must be valid UTF-8 text.") from None
        if self.refused.search(text):
            breaks = " or line breaks" if self.single_line else ""
            raise ValidationError(f"Must not contain control characters{breaks}.")
        if self.no_slash and "/" in text:
            raise ValidationError("Must not contain a slash.")
        return text


class Password(fields.String):
    """A password, taken as typed (no trimming), but valid UTF-8 and without NUL.

    scrypt pads keys with zero bytes, so "secret" and "secret\0" would hash alike.
    """

    refused, pattern = _refusing(r"\x00")

    def __init__(self, **kwargs):
        super().__init__(metadata={"pattern": self.pattern}, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        password = super()._deserialize(value, attr, data, **kwargs)
        try:
            password.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError("Must be valid UTF-8 text.") from None
        if self.refused.search(password):
            raise ValidationError("Must not contain NUL characters.")
        return password


def Id(**kwargs) -> fields.Integer:
    """A JSON integer id in the column's range: "2", 2.5 and true are refused."""
    return fields.Integer(strict=True, validate=validate.Range(1, MAX_ID), **kwargs)


class QueryInteger(fields.Integer):
    """An integer written in a query string: plain decimal digits only."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not _DIGITS.fullmatch(value):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


def QueryId(**kwargs) -> QueryInteger:
    return QueryInteger(validate=validate.Range(1, MAX_ID), **kwargs)


class QueryCodes(fields.String):
    """One code or a comma list of them ("0,1"), each among `codes`: a set of integers."""

    def __init__(self, codes, **kwargs):
        self.codes = [int(code) for code in codes]
        self.names = {str(code) for code in self.codes}
        super().__init__(
            metadata={"description": f"One of {self.codes}, or a comma list."}, **kwargs
        )

    def _deserialize(self, value, attr, data, **kwargs) -> list[int]:
        parts = super()._deserialize(value, attr, data, **kwargs).split(",")
        if not all(part in self.names for part in parts):
            raise ValidationError(f"Give one of {self.codes}, or several separated by commas.")
        return sorted({int(part) for part in parts})


class QueryBoolean(fields.Boolean):
    """`true` or `false`, nothing else."""

    truthy = {"true"}
    falsy = {"false"}


class StrictBoolean(fields.Boolean):
    """A JSON true or false: 1, 0 and strings are refused."""

    def _deserialize(self, value, attr, data, **kwargs) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class AssigneeFilter(fields.String):
    """A user id, `none` (unassigned) or `me` (the caller)."""

    def _deserialize(self, value, attr, data, **kwargs) -> int | str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if text in {"none", "me"}:
            return text
        if text.isascii() and text.isdigit() and len(text) <= 10 and 1 <= int(text) <= MAX_ID:
            return int(text)
        raise ValidationError("Give a user id, none or me.")


_priority = validate.OneOf([int(p) for p in TicketPriority])
_status = validate.OneOf([int(s) for s in TicketStatus])


def title_field(**kwargs) -> Text:
    return Text(single_line=True, validate=validate.Length(1, 255), **kwargs)


def long_text_field(**kwargs) -> Text:
    return Text(validate=validate.Length(1, 10_000), **kwargs)


# --- Requests -------------------------------------------------------------------------------


class ScopedSchema(Schema):
    """A request that may name isp_id / branch_id / user_id: they must agree with the token.

    The check runs as the arguments are loaded, so no view repeats it (403 on disagreement).
    """

    @post_load
    def within_reach(self, data: dict, **kwargs) -> dict:
        check_scope(data)
        return data


class ScopeIn(ScopedSchema):
    """The isp_id / branch_id / user_id a client may send in a body."""

    isp_id = Id()
    branch_id = Id()
    user_id = Id()


class TicketScopeArgs(ScopedSchema):
    """Optional scope in the query string of the per-ticket endpoints."""

    isp_id = QueryId()
    branch_id = QueryId()
    user_id = QueryId()


class PageArgs(ScopedSchema):
    """Optional scope and a page: every list but the ticket list takes these."""

    isp_id = QueryId()
    branch_id = QueryId()
    user_id = QueryId()
    page = QueryInteger(load_default=1, validate=validate.Range(1, MAX_ID))
    per_page = QueryInteger(load_default=DEFAULT_PER_PAGE, validate=validate.Range(1, MAX_PER_PAGE))


SORTS = ("created_at", "updated_at", "priority", "status", "due_at")


class TicketListArgs(PageArgs):
    isp_id = QueryId(required=True)
    branch_id = QueryId(required=True)
    user_id = QueryId(required=True)
    status = QueryCodes(TicketStatus)
    priority = QueryCodes(TicketPriority)
    subscriber_id = QueryId()
    assignee_id = AssigneeFilter()
    created_from = QueryTimestamp()
    created_to = QueryTimestamp(upper=True)
    updated_since = QueryTimestamp()
    overdue = QueryBoolean()
    q = Text(single_line=True, validate=validate.Length(1, 200))
    sort = fields.String(
        load_default="-created_at",
        validate=validate.OneOf([*SORTS, *(f"-{name}" for name in SORTS)]),
    )
    deleted = fields.String(
        validate=validate.OneOf(["only"]),
        metadata={"description": "only: the deleted tickets instead (admins)."},
    )
    cursor = Cursor(
        metadata={"description": "meta.next_cursor of the page before (instead of page)."}
    )

    @validates_schema
    def q_has_words(self, data, **kwargs):
        if "q" in data and not search_words(data["q"]):
            raise ValidationError("Give at least one word (letters or digits).", "q")

    @validates_schema(pass_original=True)
    def page_or_cursor(self, data, original, **kwargs):
        if "cursor" in data and "page" in original:
            raise ValidationError("Give page or cursor, not both.", "cursor")


def search_words(text: str) -> list[str]:
    """The terms a text search looks for, lower case: what spaces separate (at most 20),
    each holding a letter or digit."""
    return [term for term in text.lower().split() if _LETTER_OR_DIGIT.search(term)][:20]


_LETTER_OR_DIGIT = re.compile(r"[^\W_]")


class TicketIn(ScopeIn):
    title = title_field(required=True)
    description = long_text_field(required=True)
    subscriber_id = Id(allow_none=True)
    priority = fields.Integer(strict=True, required=True, validate=_priority)
    assignee_id = Id(allow_none=True)
    due_at = Timestamp(allow_none=True)


EDITABLE = ("title", "description", "priority", "subscriber_id", "assignee_id", "due_at")


class TicketUpdateIn(ScopeIn):
    title = title_field()
    description = long_text_field()
    subscriber_id = Id(allow_none=True)
    priority = fields.Integer(strict=True, validate=_priority)
    assignee_id = Id(allow_none=True)
    due_at = Timestamp(allow_none=True)

    @validates_schema
    def needs_a_change(self, data, **kwargs):
        if not set(EDITABLE) & data.keys():
            raise ValidationError(f"Send at least one of {', '.join(EDITABLE)}.")


class TicketStatusIn(ScopeIn):
    status = fields.Integer(strict=True, required=True, validate=_status)


class ReplyIn(ScopeIn):
    message = long_text_field(required=True)
    internal = StrictBoolean(load_default=False)


class StatsArgs(ScopedSchema):
    """Scope of the stats: the branch counted defaults to the caller's."""

    isp_id = QueryId()
    branch_id = QueryId()
    user_id = QueryId()


class SearchPageArgs(PageArgs):
    q = Text(single_line=True, validate=validate.Length(1, 200))


class UserListArgs(PageArgs):
    """branch_id narrows the list to who can be assigned that branch's tickets."""

    role = fields.String(validate=validate.OneOf([r.value for r in Role]))


class TrimmedEmail(fields.Email):
    """An email address, trimmed like every other string before it is checked."""

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        return super()._deserialize(value, attr, data, **kwargs).strip()


def email_field(**kwargs) -> TrimmedEmail:
    return TrimmedEmail(validate=validate.Length(1, 255), **kwargs)


def new_password_field(**kwargs) -> Password:
    return Password(validate=validate.Length(MIN_PASSWORD_LENGTH, 1024), **kwargs)


def role_field(**kwargs) -> fields.String:
    return fields.String(validate=validate.OneOf([r.value for r in Role]), **kwargs)


class UserCreateIn(ScopeIn):
    """A new user of the admin's ISP; branch_id (defaults to the admin's) is the user's."""

    name = title_field(required=True)
    email = email_field(required=True)
    role = role_field(required=True)
    password = new_password_field(required=True)


class UserUpdateIn(ScopeIn):
    """branch_id, when given, moves the user to that branch of the ISP."""

    name = title_field()
    role = role_field()
    is_active = StrictBoolean()
    password = new_password_field()

    @validates_schema
    def needs_a_change(self, data, **kwargs):
        if not {"name", "role", "is_active", "password", "branch_id"} & data.keys():
            raise ValidationError(
                "Send at least one of name, role, branch_id, is_active, password."
            )


def phone_field(**kwargs) -> Text:
    return Text(single_line=True, allow_none=True, validate=validate.Length(1, 32), **kwargs)


def external_id_field(**kwargs) -> Text:
    """The ISP platform's own id of a subscriber: one line, and no slash, since it is also a
    path segment (PUT /subscribers/by-external-id/{external_id})."""
    return Text(single_line=True, no_slash=True, validate=validate.Length(1, 255), **kwargs)


class SubscriberFieldsIn(ScopeIn):
    """What an admin may set on a subscriber; branch_id (defaults to the admin's) is its branch."""

    name = title_field()
    phone = phone_field()
    email = email_field(allow_none=True)
    external_id = external_id_field(allow_none=True)


class SubscriberCreateIn(SubscriberFieldsIn):
    name = title_field(required=True)


class SubscriberUpdateIn(SubscriberFieldsIn):
    @validates_schema
    def needs_a_change(self, data, **kwargs):
        if not {"name", "phone", "email", "external_id", "branch_id"} & data.keys():
            raise ValidationError(
                "Send at least one of name, phone, email, external_id, branch_id."
            )


class SubscriberSyncIn(ScopeIn):
    """The ISP platform's view of a subscriber it knows by external id."""

    name = title_field(required=True)
    phone = phone_field()
    email = email_field(allow_none=True)


class WebhookIn(ScopeIn):
    url = fields.String(required=True, validate=validate.Length(1, 2048))
    events = fields.List(
        fields.String(validate=validate.OneOf(EVENT_TYPES)),
        required=True,
        validate=validate.Length(1, len(EVENT_TYPES)),
    )

    @validates_schema
    def events_once_each(self, data, **kwargs):
        if len(set(data.get("events", []))) != len(data.get("events", [])):
            raise ValidationError("Name each event once.", "events")


class NewPasswordIn(Schema):
    """A password set through the CLI, held to the API's rules."""

    password = new_password_field(required=True)


class NoArgs(Schema):
    """The query string of a route that takes no parameters: any is 422 (unknown)."""


class LoginIn(Schema):
    email = Text(required=True, validate=validate.Length(1, 255))
    password = Password(required=True, validate=validate.Length(1, 1024))


class UserIn(Schema):
    """A new user, as given to the CLI."""

    isp_id = Id(required=True)
    branch_id = Id(required=True)
    name = title_field(required=True)
    email = email_field(required=True)
    role = fields.String(required=True, validate=validate.OneOf([r.value for r in Role]))
    password = Password(required=True, validate=validate.Length(MIN_PASSWORD_LENGTH, 1024))


class SubscriberIn(Schema):
    """A new subscriber, as given to the CLI."""

    isp_id = Id(required=True)
    branch_id = Id(required=True)
    name = title_field(required=True)
    phone = phone_field()
    email = email_field(allow_none=True)


# --- Responses ------------------------------------------------------------------------------
# Field order is the spec's; fields the spec does not show come after its own.


class OutSchema(Schema):
    """A response: a dump writes every field (null where allowed), so each one is required in
    the published document and a generated client types none of them as optional."""

    def on_bind_field(self, field_name: str, field_obj: fields.Field) -> None:
        field_obj.required = True


class UserOut(OutSchema):
    id = fields.Integer()
    name = fields.String()
    email = fields.String()
    role = fields.String()
    isp_id = fields.Integer()
    branch_id = fields.Integer()


class UserAccountOut(UserOut):
    """A user as the users endpoints show one: /auth/me's user, and whether it may log in."""

    is_active = fields.Boolean()


class SubscriberOut(OutSchema):
    id = fields.Integer()
    isp_id = fields.Integer()
    branch_id = fields.Integer()
    name = fields.String()
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    external_id = fields.String(allow_none=True)
    created_at = Timestamp()
    updated_at = Timestamp()


class TokenOut(OutSchema):
    access_token = fields.String()
    token_type = fields.String()
    expires_in = fields.Integer()
    user = fields.Nested(UserOut)


class ReplyOut(OutSchema):
    id = fields.Integer()
    message = fields.String()
    user_name = fields.String()
    created_at = Timestamp()
    user_id = fields.Integer()
    internal = fields.Boolean()


class DeskFields(OutSchema):
    """What the desk adds to a ticket, after the spec's fields."""

    assignee_id = fields.Integer(allow_none=True)
    assignee_name = fields.String(allow_none=True)
    due_at = Timestamp(allow_none=True)
    first_response_at = Timestamp(allow_none=True)
    resolved_at = Timestamp(allow_none=True)
    closed_at = Timestamp(allow_none=True)


class TicketSummaryOut(DeskFields):
    id = fields.Integer()
    title = fields.String()
    subscriber_id = fields.Integer(allow_none=True)
    subscriber_name = fields.String(allow_none=True)
    priority = fields.Integer()
    status = fields.Integer()
    created_at = Timestamp()
    isp_id = fields.Integer()
    branch_id = fields.Integer()
    updated_at = Timestamp()
    deleted_at = Timestamp(allow_none=True)

    class Meta:
        fields = (
            *("id", "title", "subscriber_id", "subscriber_name", "priority", "status"),
            *("created_at", "isp_id", "branch_id", "updated_at"),
            *DeskFields._declared_fields,
            "deleted_at",
        )


class TicketOut(DeskFields):
    id = fields.Integer()
    title = fields.String()
    description = fields.String()
    subscriber_id = fields.Integer(allow_none=True)
    subscriber_name = fields.String(allow_none=True)
    priority = fields.Integer()
    status = fields.Integer()
    replies = fields.List(fields.Nested(ReplyOut), metadata={"description": "The first 100."})
    created_at = Timestamp()
    isp_id = fields.Integer()
    branch_id = fields.Integer()
    created_by = fields.Integer()
    updated_at = Timestamp()
    replies_total = fields.Integer()

    class Meta:
        fields = (
            *("id", "title", "description", "subscriber_id", "subscriber_name", "priority"),
            *("status", "replies", "created_at", "isp_id", "branch_id", "created_by"),
            "updated_at",
            *DeskFields._declared_fields,
            "replies_total",
        )


class HistoryOut(OutSchema):
    id = fields.Integer()
    action = fields.String(validate=validate.OneOf([a.value for a in HistoryAction]))
    field = fields.String(allow_none=True)
    old = fields.Raw(allow_none=True)
    new = fields.Raw(allow_none=True)
    user_id = fields.Integer()
    user_name = fields.String()
    created_at = Timestamp()


def _counts(codes, what: str) -> fields.Dict:
    return fields.Dict(
        keys=fields.String(validate=validate.OneOf([str(int(c)) for c in codes])),
        values=fields.Integer(),
        metadata={"description": f"Live tickets per {what} code (every code is present)."},
    )


class StatsOut(OutSchema):
    by_status = _counts(TicketStatus, "status")
    by_priority = _counts(TicketPriority, "priority")
    unassigned_open = fields.Integer()
    overdue = fields.Integer()


class WebhookOut(OutSchema):
    id = fields.Integer()
    url = fields.String()
    events = fields.List(fields.String())
    created_at = Timestamp()


class WebhookCreatedOut(WebhookOut):
    """The endpoint as created, with the secret its deliveries are signed with (shown once)."""

    secret = fields.String()


class AttemptOut(OutSchema):
    delivery_id = fields.String()
    event = fields.String()
    status_code = fields.Integer(allow_none=True, metadata={"description": "null: no answer"})
    attempted_at = Timestamp()
    next_attempt_at = Timestamp(allow_none=True)


class RedeliveryOut(OutSchema):
    delivery_id = fields.String(metadata={"description": "The new delivery's id."})


class CreatedOut(OutSchema):
    id = fields.Integer()


class PageMeta(OutSchema):
    page = fields.Integer()
    per_page = fields.Integer()
    total = fields.Integer()
    pages = fields.Integer()


class TicketPageMeta(PageMeta):
    page = fields.Integer(allow_none=True, metadata={"description": "null when paging by cursor"})
    total_exact = fields.Boolean(
        metadata={"description": "false: more than total match (a filtered count stops there)"}
    )
    next_cursor = fields.String(
        allow_none=True, metadata={"description": "the next page's cursor; null on the last"}
    )


class HealthOut(OutSchema):
    status = fields.String(validate=validate.Equal("ok"))


class ReadinessOut(OutSchema):
    status = fields.String(validate=validate.Equal("ready"))
    database = fields.String(validate=validate.Equal("ok"))


ticket_in = TicketIn()
ticket_update_in = TicketUpdateIn()
ticket_status_in = TicketStatusIn()
reply_in = ReplyIn()
ticket_list_args = TicketListArgs()
ticket_scope_args = TicketScopeArgs()
login_in = LoginIn()
no_args = NoArgs()
new_password = NewPasswordIn()
user_in = UserIn()
subscriber_in = SubscriberIn()
user_out = UserOut()
subscriber_out = SubscriberOut()
reply_list_args = PageArgs()
stats_args = StatsArgs()
subscriber_list_args = SearchPageArgs()
subscriber_create_in = SubscriberCreateIn()
subscriber_update_in = SubscriberUpdateIn()
subscriber_sync_in = SubscriberSyncIn()
user_list_args = UserListArgs()
user_create_in = UserCreateIn()
user_update_in = UserUpdateIn()
webhook_in = WebhookIn()
