"""The answers' fast path, in one place: each response schema compiled to a plain dump function,
the JSON built by PostgreSQL in a schema's shape, and orjson writing the body.

Everything here is derived from the Out schemas (schemas.py): the columns a fast read selects
(answer_columns), the JSON the database writes (json_object) and the dump of a row (dumper)
follow the schema's fields, in its order, under its names. A property test holds dumper to
marshmallow's own dump for every Out schema, and the contract tests hold the database's JSON
to the schema; a field added to a schema needs only its column.
"""

from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

import orjson
from flask import Response
from marshmallow import Schema, fields
from sqlalchemy import Text, cast, func, literal

from .fields import Timestamp


def answer(body: dict, status: int, headers=None) -> Response:
    """A JSON response (orjson: the hot paths' bodies are large and frequent)."""
    return Response(orjson.dumps(body), status, headers, mimetype="application/json")


def spliced(text: str) -> orjson.Fragment:
    """JSON the database already wrote, embedded in an answer as it is (never parsed)."""
    return orjson.Fragment(text)


# --- Reading: the columns of an answer, and its JSON written by PostgreSQL --------------------


def answer_columns(schema: type[Schema], model, others: Mapping[str, Any], *, besides=()) -> list:
    """The columns of a schema's answer, in its fields' order, each labelled with its field's
    name: a row of them dumps by position (dumper). A field is the model's column of the same
    name, unless `others` names its column (a joined name, a renamed column); `besides` names
    the fields that come from no column (a ticket's replies). A field with no column fails
    here, at import, not in a request."""
    columns = []
    for name, field in schema().dump_fields.items():
        if name in besides:
            continue
        attribute = field.attribute or name
        column = others[attribute] if attribute in others else getattr(model, attribute)
        columns.append(column.label(field.data_key or name))
    return columns


def json_object(schema: type[Schema], columns: Mapping[str, Any]):
    """PostgreSQL's json_build_object of a schema's answer: its fields in order, under their
    names, each from its column; timestamps written as the API writes them, in UTC."""
    members = []
    for name, field in schema().dump_fields.items():
        column = columns[field.attribute or name]
        if isinstance(field, Timestamp):
            moment = func.timezone("UTC", column)
            column = func.to_char(moment, literal("YYYY-MM-DD HH24:MI:SS"))
        members += [literal(field.data_key or name), column]
    return func.json_build_object(*members)


def json_text(expression):
    """JSON as text, so the driver hands it over unparsed (for spliced)."""
    return cast(expression, Text)


# --- Writing: a schema compiled to a plain dump function ----------------------------------


@cache
def dumper(schema: type[Schema], many: bool = False) -> Callable[[Any], Any]:
    """A function that dumps what `schema` dumps, compiled once from its fields.

    Marshmallow's general machinery costs about a millisecond for a ticket with its replies;
    the response schemas only use plain fields, timestamps and nesting, so each field becomes
    one step: read the attribute (or key), convert it when its field says so. A tuple is a
    row of the schema's own columns, in its order (answer_columns): it is zipped with the
    field names, and only the fields that need it are converted.
    """
    steps = [
        (field.data_key or name, field.attribute or name, _converter(field))
        for name, field in schema().dump_fields.items()
    ]
    names = [name for name, _, _ in steps]
    converted = [(n, convert) for n, (_, _, convert) in enumerate(steps) if convert is not None]

    def dump_row(row: tuple) -> dict:
        values = list(row[: len(names)])
        for n, convert in converted:
            if values[n] is not None:
                values[n] = convert(values[n])
        return dict(zip(names, values, strict=True))

    def dump_one(obj):
        if isinstance(obj, tuple):
            return dump_row(obj)
        if isinstance(obj, Mapping):
            values = [obj[attribute] for _, attribute, _ in steps]
        else:
            values = [getattr(obj, attribute) for _, attribute, _ in steps]
        return {
            name: value if convert is None or value is None else convert(value)
            for (name, _, convert), value in zip(steps, values, strict=True)
        }

    if many:
        # JSON the database already wrote in this schema's shape passes through as it is
        # (read as text, it is spliced in).
        return lambda objs: (
            objs
            if isinstance(objs, orjson.Fragment)
            else spliced(objs)
            if isinstance(objs, str)
            else [dump_one(o) for o in objs]
        )
    return dump_one


def _converter(field: fields.Field) -> Callable[[Any], Any] | None:
    """None when the value is written as it is; else the conversion the field makes."""
    if isinstance(field, fields.Nested):
        return dumper(type(field.schema), field.many)
    if isinstance(field, fields.List) and isinstance(field.inner, fields.Nested):
        return dumper(type(field.inner.schema), True)
    if isinstance(field, fields.Integer | fields.Boolean | fields.Raw | fields.Dict | fields.List):
        return None
    if type(field) is fields.String:
        return None
    if isinstance(field, Timestamp):  # ours: one value, written directly
        return lambda value: value if isinstance(value, str) else Timestamp.write(value)
    return lambda value: field.serialize("value", {"value": value})
