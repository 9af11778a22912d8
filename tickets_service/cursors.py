"""Keyset paging for the ticket list: an opaque, signed cursor names the last row a client saw
(its sort value and id) and the list it came from, so the next page starts right after it by
index, however deep, and a page a thousand pages down costs what the first costs."""

import base64
import hashlib
import hmac
import json
from datetime import datetime

from flask import current_app
from marshmallow import ValidationError, fields
from sqlalchemy import ColumnElement, and_, or_, tuple_

from .models import Ticket

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
    """A cursor from a list's meta.next_cursor: its signature is checked on load (a
    malformed or altered one is 422), and it loads as (list fingerprint, value, id)."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            signature, payload = raw[:16], raw[16:]
            if len(text) > 512 or not hmac.compare_digest(signature, _sign(payload)):
                raise ValueError("bad signature")
            list_id, position, row_id = json.loads(payload)
        except ValueError:  # bad base64, JSON or shape; a forged or altered cursor
            raise ValidationError(INVALID) from None
        return list_id, position, row_id


def after(args: dict, cursor: tuple) -> ColumnElement[bool]:
    """Rows strictly after the cursor's in the list's order (ties on id the same way; rows
    without a due time last). 422 if the cursor comes from another list."""
    list_id, position, row_id = cursor
    if list_id != fingerprint(args):
        raise ValidationError({"cursor": [INVALID]})
    sort = args["sort"]
    name, descending = sort.lstrip("-"), sort.startswith("-")
    column = getattr(Ticket, name)
    if column.type.python_type is datetime and position is not None:
        position = datetime.fromisoformat(position)
    beyond = (lambda a, b: a < b) if descending else (lambda a, b: a > b)
    if position is None:  # only rows without a due time remain, in id order
        return and_(column.is_(None), beyond(Ticket.id, row_id))
    # A row value comparison, so the index of the sort is entered at the position itself.
    further = beyond(tuple_(column, Ticket.id), tuple_(position, row_id))
    return or_(further, column.is_(None)) if name == "due_at" else further
