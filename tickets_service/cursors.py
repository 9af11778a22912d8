"""Keyset paging for the ticket list: an opaque, signed cursor names the last row a client saw
(its sort value and id) and the list it came from, so the next page starts right after it by
index, however deep, and a page a thousand pages down costs what the first costs."""

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

from flask import current_app
from marshmallow import ValidationError, fields
from sqlalchemy import ColumnElement, Integer, and_, bindparam, or_, tuple_

from .models import MAX_ID, Ticket

INVALID = "Not a cursor of this list: start again from its first page."
# The list arguments a cursor does not pin: paging itself.
_PAGING = {"page", "per_page", "cursor"}


def _key() -> bytes:
    """A signing key of its own, derived from the app's secret."""
    secret = current_app.config["JWT_SECRET_KEY"].encode()
    return hmac.new(secret, b"tickets-service list cursor", hashlib.sha256).digest()


def _sign(payload: bytes) -> bytes:
    return hmac.new(_key(), payload, hashlib.sha256).digest()[:16]


def fingerprint(args: dict) -> str:
    """What the list is: its scope, filters and sort (a cursor belongs to one list)."""
    pinned = {name: value for name, value in args.items() if name not in _PAGING}
    text = json.dumps(pinned, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode(args: dict, row) -> str:
    """The cursor of the page after `row` (the last of a page) in this list."""
    name = args["sort"].lstrip("-")
    value = row[name]
    if isinstance(value, datetime):
        value = value.isoformat()
    payload = json.dumps([fingerprint(args), value, row["id"]], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(_sign(payload) + payload).decode().rstrip("=")


class Cursor(fields.String):
    """A cursor from a list's meta.next_cursor: its signature is checked on load, and it loads
    as (list fingerprint, value, id). Anything else, altered, forged, or signed but of another
    shape, is 422."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            signature, payload = raw[:16], raw[16:]
            if len(text) > 512 or not hmac.compare_digest(signature, _sign(payload)):
                raise ValueError("bad signature")
            loaded = json.loads(payload)
        except ValueError:  # bad base64, JSON or UTF-8; a forged or altered cursor
            raise ValidationError(INVALID) from None
        if not (
            isinstance(loaded, list)
            and len(loaded) == 3
            and isinstance(loaded[0], str)
            and _is_id(loaded[2])
            and (loaded[1] is None or isinstance(loaded[1], str | int))
            and not isinstance(loaded[1], bool)
        ):
            raise ValidationError(INVALID)
        return tuple(loaded)


def _is_id(value) -> bool:
    return type(value) is int and 1 <= value <= MAX_ID


def position(args: dict, cursor: tuple) -> tuple:
    """The (sort value, id) the cursor stands at, as the sort's column holds them; 422 if the
    cursor comes from another list or its value is not one of that column's."""
    list_id, value, row_id = cursor
    if list_id != fingerprint(args):
        raise ValidationError({"cursor": [INVALID]})
    column = Ticket.__table__.c[args["sort"].lstrip("-")]
    if value is None:
        if not column.nullable:
            raise ValidationError({"cursor": [INVALID]})
    elif column.type.python_type is datetime:
        try:
            value = datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            value = None
        if value is None:
            raise ValidationError({"cursor": [INVALID]})
        value = value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite's are naive UTC
    elif type(value) is not int or not -(2**15) <= value < 2**15:
        raise ValidationError({"cursor": [INVALID]})
    return value, row_id


def after(sort: str, at_null: bool) -> ColumnElement[bool]:
    """Rows strictly after the cursor's position (bound parameters `cursor_value` and
    `cursor_id`) in the list's order: ties on id the same way, rows without a due time last.
    `at_null`: the cursor stands among those rows already."""
    name, descending = sort.lstrip("-"), sort.startswith("-")
    column = getattr(Ticket, name)
    beyond = (lambda a, b: a < b) if descending else (lambda a, b: a > b)
    row_id = bindparam("cursor_id", type_=Integer)
    if at_null:  # only rows without a due time remain, in id order
        return and_(column.is_(None), beyond(Ticket.id, row_id))
    value = bindparam("cursor_value", type_=column.type)
    # A row value comparison, so the index of the sort is entered at the position itself.
    further = beyond(tuple_(column, Ticket.id), tuple_(value, row_id))
    return or_(further, column.is_(None)) if name == "due_at" else further
