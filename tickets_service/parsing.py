"""How the routes read their arguments: webargs, held to the service's stricter rules."""

import json
from functools import cache

from flask import abort
from marshmallow import Schema, ValidationError, missing
from webargs.flaskparser import FlaskParser

from .errors import MAX_FIELD_ERRORS


class StrictParser(FlaskParser):
    """webargs' Flask parser, with what this API promises its clients on top.

    - A body is JSON whatever its Content-Type says, strict UTF-8, without NaN or Infinity;
      anything that is not a JSON object is 400. A name given twice in one object is 422 on
      that name, rather than silently the last value.
    - Unknown query parameters are 422 like unknown body fields: every location loads with
      the schema's own `unknown`, which is RAISE.
    - A query parameter given twice is ambiguous: 422, rather than silently the first.
    """

    DEFAULT_UNKNOWN_BY_LOCATION: dict = {}

    def parse(self, argmap, req=None, *, location=None, **kwargs):
        """An empty query string for a schema of optional fields without defaults loads as
        {} without running the schema (Fetch Ticket's optional scope, on every request)."""
        if (
            location == "query"
            and not (req or self.get_default_request()).query_string
            and _all_optional(argmap)
        ):
            return {}
        return super().parse(argmap, req, location=location, **kwargs)

    def load_json(self, req, schema) -> dict:
        raw = req.get_data(cache=True)
        try:
            # Strict UTF-8 first: json.loads on bytes would let encoded surrogates through.
            data, twice = _strict_json(raw.decode("utf-8")) if raw else (None, ())
        except (ValueError, RecursionError):  # bad JSON, bad UTF-8, absurd nesting or digits
            abort(400, "Request body is not valid JSON.")
        if not isinstance(data, dict):
            abort(400, "Request body must be a JSON object.")
        if twice:
            raise ValidationError({name: ["Give this field only once."] for name in twice})
        if len(data) > len(schema.load_fields) + MAX_FIELD_ERRORS:
            # More unknown names than a 422 shows: refused without loading the body.
            known = {field.data_key or name for name, field in schema.load_fields.items()}
            unknown = [name for name in data if name not in known][:MAX_FIELD_ERRORS]
            raise ValidationError({name: ["Unknown field."] for name in unknown})
        return data

    def load_querystring(self, req, schema) -> dict:
        repeated = {
            name: ["Give this parameter only once."]
            for name, values in req.args.lists()
            if len(values) > 1
        }
        if repeated:
            raise ValidationError(repeated)
        return req.args.to_dict()


@cache
def _all_optional(schema) -> bool:
    return isinstance(schema, Schema) and not any(
        field.required or field.load_default is not missing for field in schema.fields.values()
    )


def _strict_json(text: str) -> tuple[object, list[str]]:
    """The parsed JSON, and the names any of its objects gives more than once."""
    twice: list[str] = []

    def once_each(pairs: list[tuple[str, object]]) -> dict:
        data = dict(pairs)
        if len(data) != len(pairs):
            seen: set[str] = set()
            twice.extend(name for name, _ in pairs if name in seen or seen.add(name))
        return data

    return json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=once_each), twice


def _refuse_constant(name: str):
    """NaN and Infinity are not JSON, whatever Python's parser allows."""
    raise ValueError(f"{name} is not valid JSON")
