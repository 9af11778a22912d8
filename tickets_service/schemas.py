"""Marshmallow schemas, named by direction: *In for bodies, *Args for query strings, *Out for
responses. Instances are created once at the bottom; the views declare them on their routes."""

import re
from datetime import UTC, datetime

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from .models import MAX_ID, Role, TicketPriority, TicketStatus
from .scope import check_scope

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
MAX_PER_PAGE = 200
DEFAULT_PER_PAGE = 50
MIN_PASSWORD_LENGTH = 8

# C0 controls and DEL, except tab, line feed and carriage return. NUL is among them: PostgreSQL
# cannot store it in text, so it must be refused here rather than fail at commit. The class is
# written once and serves both the check below and the pattern the document publishes.
CONTROL_CHARACTERS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
LINE_BREAKS = r"\n\r"
_DIGITS = re.compile(r"-?[0-9]{1,20}")


def _refusing(characters: str) -> tuple[re.Pattern, str]:
    """A search for any of these characters, and the ECMA pattern of a text without them."""
    return re.compile(f"[{characters}]"), f"^[^{characters}]*$"


class Timestamp(fields.String):
    """A datetime written "YYYY-MM-DD HH:MM:SS", always in UTC."""

    def __init__(self, **kwargs):
        metadata = {
            "pattern": r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$",
            "example": "2024-01-15 10:30:00",
        }
        super().__init__(metadata=metadata | kwargs.pop("metadata", {}), **kwargs)

    def _serialize(self, value: datetime | None, attr, obj, **kwargs):
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.strftime(TIMESTAMP_FORMAT)


class Text(fields.String):
    """A string that is trimmed, valid UTF-8 and free of control characters."""

    def __init__(self, *, single_line: bool = False, **kwargs):
        refused = CONTROL_CHARACTERS + (LINE_BREAKS if single_line else "")
        self.refused, pattern = _refusing(refused)
        super().__init__(metadata={"pattern": pattern} | kwargs.pop("metadata", {}), **kwargs)
        self.single_line = single_line

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError("Must be valid UTF-8 text.") from None
        if self.refused.search(text):
            raise ValidationError("Must not contain control characters.")
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


class TicketListArgs(ScopedSchema):
    isp_id = QueryId(required=True)
    branch_id = QueryId(required=True)
    user_id = QueryId(required=True)
    status = QueryInteger(validate=_status)
    priority = QueryInteger(validate=_priority)
    page = QueryInteger(load_default=1, validate=validate.Range(1, MAX_ID))
    per_page = QueryInteger(load_default=DEFAULT_PER_PAGE, validate=validate.Range(1, MAX_PER_PAGE))


class TicketIn(ScopeIn):
    title = title_field(required=True)
    description = long_text_field(required=True)
    subscriber_id = Id(allow_none=True)
    priority = fields.Integer(strict=True, required=True, validate=_priority)


class TicketUpdateIn(ScopeIn):
    title = title_field()
    description = long_text_field()
    subscriber_id = Id(allow_none=True)
    priority = fields.Integer(strict=True, validate=_priority)

    @validates_schema
    def needs_a_change(self, data, **kwargs):
        if not {"title", "description", "priority", "subscriber_id"} & data.keys():
            raise ValidationError(
                "Send at least one of title, description, priority, subscriber_id."
            )


class TicketStatusIn(ScopeIn):
    status = fields.Integer(strict=True, required=True, validate=_status)


class ReplyIn(ScopeIn):
    message = long_text_field(required=True)


class LoginIn(Schema):
    email = Text(required=True, validate=validate.Length(1, 255))
    password = Password(required=True, validate=validate.Length(1, 1024))


class UserIn(Schema):
    """A new user, as given to the CLI."""

    isp_id = Id(required=True)
    branch_id = Id(required=True)
    name = title_field(required=True)
    email = fields.Email(required=True, validate=validate.Length(1, 255))
    role = fields.String(required=True, validate=validate.OneOf([r.value for r in Role]))
    password = Password(required=True, validate=validate.Length(MIN_PASSWORD_LENGTH, 1024))


class SubscriberIn(Schema):
    """A new subscriber, as given to the CLI."""

    isp_id = Id(required=True)
    branch_id = Id(required=True)
    name = title_field(required=True)
    phone = Text(single_line=True, allow_none=True, validate=validate.Length(1, 32))
    email = fields.Email(allow_none=True, validate=validate.Length(1, 255))


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


class SubscriberOut(OutSchema):
    id = fields.Integer()
    isp_id = fields.Integer()
    branch_id = fields.Integer()
    name = fields.String()
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)


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


class TicketSummaryOut(OutSchema):
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


class TicketOut(OutSchema):
    id = fields.Integer()
    title = fields.String()
    description = fields.String()
    subscriber_id = fields.Integer(allow_none=True)
    subscriber_name = fields.String(allow_none=True)
    priority = fields.Integer()
    status = fields.Integer()
    replies = fields.List(fields.Nested(ReplyOut))
    created_at = Timestamp()
    isp_id = fields.Integer()
    branch_id = fields.Integer()
    created_by = fields.Integer(attribute="created_by_id")
    updated_at = Timestamp()


class CreatedOut(OutSchema):
    id = fields.Integer()


class PageMeta(OutSchema):
    page = fields.Integer()
    per_page = fields.Integer()
    total = fields.Integer()
    pages = fields.Integer()


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
user_in = UserIn()
subscriber_in = SubscriberIn()
user_out = UserOut()
subscriber_out = SubscriberOut()
