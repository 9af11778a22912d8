"""The fields of this API's requests and answers: its one timestamp format, text that is free of
control characters, strict integers, booleans and ids, query-string forms of them, and the
common field definitions (a title, an email...). Schemas (schemas.py) are built from these."""

import re
from datetime import UTC, datetime, timedelta

from marshmallow import ValidationError, fields, validate

from .models import LAST_MOMENT, MAX_ID, TIMESTAMP, Role, TicketPriority, TicketStatus

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


priority_code = validate.OneOf([int(p) for p in TicketPriority])
status_code = validate.OneOf([int(s) for s in TicketStatus])


def title_field(**kwargs) -> Text:
    return Text(single_line=True, validate=validate.Length(1, 255), **kwargs)


def long_text_field(**kwargs) -> Text:
    return Text(validate=validate.Length(1, 10_000), **kwargs)


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


def phone_field(**kwargs) -> Text:
    return Text(single_line=True, allow_none=True, validate=validate.Length(1, 32), **kwargs)


def external_id_field(**kwargs) -> Text:
    """The ISP platform's own id of a subscriber: one line, and no slash, since it is also a
    path segment (PUT /subscribers/by-external-id/{external_id})."""
    return Text(single_line=True, no_slash=True, validate=validate.Length(1, 255), **kwargs)


# A key or a tag: a lowercase slug (letters, digits, single hyphens between them).
SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
SLUG_RULE = "a lowercase slug (a-z, 0-9, single hyphens between them) of at most 40 characters"


class Slug(fields.String):
    """A lowercase slug of at most 40 characters, taken exactly as sent (never folded)."""

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if len(text) > 40 or not SLUG.fullmatch(text):
            raise ValidationError(f"Give {SLUG_RULE}.")
        return text


def tags_field(**kwargs) -> fields.List:
    """At most 20 tags, each named once."""

    def once_each(tags: list) -> None:
        if len(set(tags)) != len(tags):
            raise ValidationError("Name each tag once.")

    return fields.List(Slug(), validate=[validate.Length(max=20), once_each], **kwargs)


class QuerySlugs(fields.String):
    """One slug or a comma list of them (at most 20), as a query string writes them."""

    def _deserialize(self, value, attr, data, **kwargs) -> list[str]:
        parts = super()._deserialize(value, attr, data, **kwargs).split(",")
        if len(parts) > 20 or not all(len(p) <= 40 and SLUG.fullmatch(p) for p in parts):
            raise ValidationError(f"Give {SLUG_RULE}, or up to 20 separated by commas.")
        return sorted(set(parts))
