"""Hostile and invalid input on every endpoint of the catalogue.

Each refused request gets a clear 4xx in the error envelope (never a 5xx, an HTML page, a trace
or SQL) and leaves the database exactly as it was. SQL, HTML and unusual but valid Unicode are
plain text to a JSON API: stored and returned verbatim.
"""

import io
import json
import re
from dataclasses import replace
from urllib.parse import urlencode

import pytest
from sqlalchemy import inspect
from support.catalogue import (
    CREATE,
    ENDPOINTS,
    FETCH,
    LIST,
    LOGIN,
    OUTSIDE_THE_MATRICES,
    PER_TICKET,
    REPLY,
    UPDATE,
    WITH_BODY,
    cases,
    matrix,
)
from support.client import PASSWORD, encode

from tickets_service.extensions import db
from tickets_service.models import MAX_ID, Ticket, TicketReply

MIB = 1024 * 1024  # the default MAX_CONTENT_LENGTH
RAW = "\u2063raw\u2063"  # stands in for a literal spliced into a body's JSON text
WITH_QUERY = tuple(endpoint for endpoint in ENDPOINTS if endpoint.query_integers)


def splice(body: dict, name: str, literal: bytes) -> bytes:
    """The body as JSON with `name`'s value replaced by a literal no encoder would write."""
    return encode({**body, name: RAW}).replace(encode(RAW), literal)


def first(body: dict) -> str:
    return next(iter(body))


# --- Bodies that are not a JSON object: 400 ---------------------------------------------------
# Each turns an accepted body into text that is not one JSON object, so that is all that is
# wrong with it. NaN and Infinity are not JSON (RFC 8259) although Python's parser takes them.

DEPTH = 100_000
NOT_A_JSON_OBJECT = {
    "truncated": lambda body: encode(body)[:-1],
    "cut-mid-way": lambda body: encode(body)[: len(encode(body)) // 2],
    "unclosed-brace": lambda body: b"{",
    "lone-closing-brace": lambda body: b"}",
    "trailing-garbage": lambda body: encode(body) + b" garbage",
    "two-objects": lambda body: encode(body) + encode(body),
    "trailing-comma": lambda body: encode(body)[:-1] + b",}",
    "missing-colon": lambda body: b'{"' + first(body).encode() + b'" 1}',
    "single-quotes": lambda body: encode(body).replace(b'"', b"'"),
    "unquoted-keys": lambda body: re.sub(rb'"(\w+)":', rb"\1:", encode(body)),
    "comment": lambda body: encode(body)[:-1] + b" /* note */}",
    "raw-control-char-in-string": lambda body: encode(body)[:-1] + b', "no\x01te": 1}',
    "raw-newline-in-string": lambda body: encode(body)[:-1] + b', "no\nte": 1}',
    "invalid-escape": lambda body: encode(body)[:-1] + b', "note": "\\x41"}',
    "short-unicode-escape": lambda body: encode(body)[:-1] + b', "note": "\\u12"}',
    "NaN-value": lambda body: splice(body, first(body), b"NaN"),
    "Infinity-value": lambda body: splice(body, first(body), b"Infinity"),
    "minus-Infinity-value": lambda body: splice(body, first(body), b"-Infinity"),
    "hex-number": lambda body: splice(body, first(body), b"0x10"),
    "leading-zero": lambda body: splice(body, first(body), b"012"),
    "plus-sign": lambda body: splice(body, first(body), b"+1"),
    "python-literal": lambda body: splice(body, first(body), b"None"),
    "bare-word": lambda body: splice(body, first(body), b"undefined"),
    "bare-NaN": lambda body: b"NaN",
    "bare-Infinity": lambda body: b"Infinity",
    "empty-list": lambda body: b"[]",
    "list-of-the-valid-object": lambda body: b"[" + encode(body) + b"]",
    "string": lambda body: b'"x"',
    "empty-string": lambda body: b'""',
    "number": lambda body: b"1",
    "zero": lambda body: b"0",
    "float": lambda body: b"-1.5e3",
    "null": lambda body: b"null",
    "true": lambda body: b"true",
    "false": lambda body: b"false",
    "unclosed-lists": lambda body: b"[" * DEPTH,
    "closed-lists": lambda body: b"[" * DEPTH + b"]" * DEPTH,
    "closed-objects": lambda body: b'{"a":' * DEPTH + b"1" + b"}" * DEPTH,
    "lists-in-a-field": lambda body: b'{"title": ' + b"[" * DEPTH + b"]" * DEPTH + b"}",
}


@pytest.mark.parametrize("spoil", cases(NOT_A_JSON_OBJECT))
@pytest.mark.parametrize("endpoint", WITH_BODY, ids=str)
def test_a_body_that_is_not_one_json_object_is_400(send, world, assert_refused, endpoint, spoil):
    data = spoil(endpoint.body(world))
    assert_refused(lambda: send(endpoint, world, data), endpoint.within_limit(data, MIB, 400))


@pytest.mark.parametrize("same_value", [True, False], ids=["same-value", "another-value"])
@pytest.mark.parametrize("endpoint", WITH_BODY, ids=str)
def test_a_field_given_twice_is_422_on_that_field(
    send, world, assert_refused, endpoint, same_value
):
    """Which of two values would count is a guess (parsers differ): the client is told instead."""
    body = endpoint.body(world)
    name = next(reversed(body))
    again = json.dumps(body[name] if same_value else "other")
    data = encode(body)[:-1] + f', "{name}": {again}}}'.encode()
    assert_refused(lambda: send(endpoint, world, data), 422, name)


def test_a_field_given_twice_after_a_syntax_error_is_still_400(send, world, assert_refused):
    data = b'{"title": "a", "title": "b", "priority": }'
    assert_refused(lambda: send(CREATE, world, data), 400)


NO_JSON = {
    "empty": lambda body: b"",
    "whitespace": lambda body: b" \r\n\t ",
    "form-fields": lambda body: urlencode(body).encode(),
}
CONTENT_TYPES = {
    "none": None,
    "json": "application/json",
    "form": "application/x-www-form-urlencoded",
}


@pytest.mark.parametrize("content_type", cases(CONTENT_TYPES))
@pytest.mark.parametrize("spoil", cases(NO_JSON))
@pytest.mark.parametrize("endpoint", WITH_BODY, ids=str)
def test_a_body_without_json_is_400_whatever_its_content_type(
    send, world, assert_refused, endpoint, spoil, content_type
):
    data = spoil(endpoint.body(world))
    assert_refused(lambda: send(endpoint, world, data, content_type=content_type), 400)


# "Parse the body whatever its Content-Type says": a valid object is accepted under any label.
ANY_LABEL = {
    **CONTENT_TYPES,
    "text-plain": "text/plain",
    "multipart": "multipart/form-data; boundary=xyz",
    "xml": "application/xml",
    "json-with-charset": "application/json; charset=utf-8",
}


@pytest.mark.parametrize("content_type", cases(ANY_LABEL))
@pytest.mark.parametrize("endpoint", WITH_BODY, ids=str)
def test_a_json_object_is_accepted_whatever_the_content_type(
    send, world, assert_took_effect, endpoint, content_type
):
    response = send(endpoint, world, content_type=content_type)
    assert_took_effect(endpoint, world, response)


# --- Size: at most MAX_CONTENT_LENGTH bytes, with or without Content-Length -------------------


def padded(body: dict, size: int) -> bytes:
    """The body as JSON, grown to `size` bytes with insignificant whitespace."""
    text = encode(body)
    return text[:-1] + b" " * (size - len(text)) + b"}"


def chunked(data: bytes) -> dict:
    """Request options for a body streamed without Content-Length, as a WSGI server hands it."""
    return {
        "input_stream": io.BytesIO(data),
        "headers": {"Transfer-Encoding": "chunked"},
        "environ_overrides": {"wsgi.input_terminated": True},
    }


LIMITS = [pytest.param(None, id="default-1MiB"), pytest.param(1024, id="configured-1KiB")]


@pytest.fixture
def limited(client, make_app):
    """limited(limit) -> (a test client of an app with that MAX_CONTENT_LENGTH, the limit)."""

    def build(limit):
        if limit is None:
            return client, MIB
        return make_app(MAX_CONTENT_LENGTH=limit).test_client(), limit

    return build


@pytest.mark.parametrize("limit", LIMITS)
@pytest.mark.parametrize("endpoint", WITH_BODY, ids=str)
def test_a_body_of_exactly_the_size_limit_is_accepted(
    send, world, assert_took_effect, limited, endpoint, limit
):
    to, size = limited(limit)
    size = min(size, endpoint.body_limit or size)
    response = send(endpoint, world, padded(endpoint.body(world), size), to=to)
    assert_took_effect(endpoint, world, response)


@pytest.mark.parametrize("transfer", ["content-length", "chunked"])
@pytest.mark.parametrize("excess", [pytest.param(1, id="1B"), pytest.param(10 * MIB, id="10MiB")])
@pytest.mark.parametrize("limit", LIMITS)
@pytest.mark.parametrize("endpoint", WITH_BODY, ids=str)
def test_a_body_over_the_size_limit_is_413(
    send, world, assert_refused, limited, endpoint, limit, excess, transfer
):
    """Valid JSON up to the limit and whitespace beyond it: the limit refuses what lies beyond
    it, rather than cutting the body there or reading the rest."""
    to, size = limited(limit)
    data = padded(endpoint.body(world), min(size, endpoint.body_limit or size)) + b" " * excess
    options = chunked(data) if transfer == "chunked" else {"data": data}
    assert_refused(lambda: send(endpoint, world, to=to, **options), 413)


@pytest.mark.parametrize("endpoint", WITH_BODY, ids=str)
def test_a_chunked_body_within_the_limit_is_accepted(send, world, assert_took_effect, endpoint):
    response = send(endpoint, world, **chunked(encode(endpoint.body(world))))
    assert_took_effect(endpoint, world, response)


# --- Fields: every type, range, code, length and character rule -----------------------------

NOT_AN_INTEGER = {
    "digit-string": "2",
    "word": "abc",
    "empty-string": "",
    "float": 2.5,
    "true": True,
    "false": False,
    "empty-list": [],
    "list": [2],
    "empty-object": {},
    "object": {"value": 2},
    "null": None,
}
NOT_A_STRING = {
    "integer": 1,
    "zero": 0,
    "float": 2.5,
    "true": True,
    "false": False,
    "empty-list": [],
    "list": ["text"],
    "empty-object": {},
    "object": {"text": "x"},
    "null": None,
}
OUT_OF_RANGE = {
    "2^31": 2**31,
    "2^63": 2**63,
    "10^30": 10**30,
    "-1": -1,
    "0": 0,
    "-2^31-1": -(2**31) - 1,
    "-2^63": -(2**63),
}


def null_is_allowed(endpoint, name, value) -> bool:
    return value is None and name in endpoint.nullable_fields


def is_a_code(endpoint, name, value) -> bool:
    return value in endpoint.codes.get(name, ())  # 0 is a status: Open


def resent(send, world, endpoint, **changes):
    """A request with the endpoint's valid body and `changes` applied to it."""
    return lambda: send(endpoint, world, {**endpoint.body(world), **changes})


@pytest.mark.parametrize(
    ("endpoint", "name", "value"),
    matrix("integer_fields", NOT_AN_INTEGER, skip=null_is_allowed)
    + matrix("string_fields", NOT_A_STRING, skip=null_is_allowed)
    + matrix("integer_fields", OUT_OF_RANGE, skip=is_a_code)
    + matrix("codes", lambda endpoint, name: {"above-the-codes": max(endpoint.codes[name]) + 1})
    + matrix("refused_fields", lambda endpoint, name: {"refused": endpoint.refused_fields[name]}),
)
def test_a_field_with_a_value_it_cannot_take_is_422(
    send, world, assert_refused, endpoint, name, value
):
    assert_refused(resent(send, world, endpoint, **{name: value}), 422, name)


@pytest.mark.parametrize(
    ("endpoint", "name", "value"), matrix("required_fields", {"missing": None})
)
def test_a_missing_required_field_is_422(send, world, assert_refused, endpoint, name, value):
    body = {key: value for key, value in endpoint.body(world).items() if key != name}
    assert_refused(lambda: send(endpoint, world, body), 422, name)


# Valid JSON, but no integer the API takes. 5000 digits exceed the parser's limit (RFC 8259 lets
# a parser bound the numbers it accepts): 400.
NUMBER_LITERALS = {
    "1e400": (b"1e400", 422),
    "1E2": (b"1E2", 422),
    "2.0": (b"2.0", 422),
    "minus-zero": (b"-0", 422),
    "5000-digits": (b"9" * 5000, 400),
}


def minus_zero_is_a_code(endpoint, name, literal) -> bool:
    return literal[0] == b"-0" and is_a_code(endpoint, name, 0)


@pytest.mark.parametrize(
    ("endpoint", "name", "literal"),
    matrix("integer_fields", NUMBER_LITERALS, skip=minus_zero_is_a_code),
)
def test_a_number_literal_that_is_no_valid_integer_is_refused(
    send, world, assert_refused, endpoint, name, literal
):
    data, status = splice(endpoint.body(world), name, literal[0]), literal[1]
    assert_refused(lambda: send(endpoint, world, data), status, name if status == 422 else None)


def is_secret(endpoint, name, value) -> bool:
    return name in endpoint.secret_fields


TEXT_RULES = {
    "NUL": "Conn\x00ection",
    "NUL-at-the-end": "Connection\x00",
    "NUL-only": "\x00",
    "SOH": "Conn\x01ection",
    "BS": "Conn\x08ection",
    "ESC": "Conn\x1b[31mection",
    "DEL": "Conn\x7fection",
    "C1-NEL": "Conn\x85ection",
    "C1-CSI": "Conn\x9b31mection",
    "empty": "",
    "whitespace-only": " \t\r\n ",
}


def too_long(endpoint, name) -> dict:
    size = endpoint.max_lengths[name]
    return {
        f"{size + 1}-ascii": "a" * (size + 1),
        f"{size + 1}-accented": "é" * (size + 1),
        f"{size + 1}-emoji": "😀" * (size + 1),
        "500000": "a" * 500_000,
    }


@pytest.mark.parametrize(
    ("endpoint", "name", "value"),
    matrix("string_fields", TEXT_RULES, skip=is_secret)
    + matrix("max_lengths", too_long)
    + matrix(
        "secret_fields",
        {
            "empty": "",
            "NUL": "x\x00",
            "right-password-then-NUL": PASSWORD + "\x00",
            "NUL-then-right-password": "\x00" + PASSWORD,
        },
    )
    + [
        pytest.param(endpoint, "title", f"Line one{end}line two", id=f"{endpoint}-title-{label}")
        for endpoint in (CREATE, UPDATE)
        for label, end in {
            "line-feed": "\n",
            "carriage-return": "\r",
            "line-separator": "\u2028",
            "paragraph-separator": "\u2029",
        }.items()
    ],
)
def test_text_that_breaks_a_rule_is_422(send, world, assert_refused, endpoint, name, value):
    """Control characters, blank, too long (in characters, not bytes), or a line break in a
    one-line title. A NUL in a password too: scrypt would hash "secret" and "secret\\0" alike.
    (A route with its own body limit refuses a body over it first: 413.)"""
    data = encode({**endpoint.body(world), name: value})
    status = endpoint.within_limit(data, MIB, 422)
    assert_refused(
        resent(send, world, endpoint, **{name: value}), status, name if status == 422 else None
    )


@pytest.mark.parametrize(
    "password", ["Conn\x01\x1b\x7fection", " \t\r\n "], ids=["controls", "blank"]
)
def test_a_password_with_other_controls_or_only_spaces_is_just_wrong(
    send, world, assert_refused, password
):
    """The password is compared with a hash, never stored, and may be set with any character
    through the CLI: only NUL is refused; anything else is checked, and here wrong."""
    response = assert_refused(resent(send, world, LOGIN, password=password), 401)
    assert "errors" not in response.get_json()


LONE_SURROGATES = {
    "high": b'"\\ud800"',
    "low": b'"\\udfff"',
    "high-inside": b'"Conn\\ud800ection"',
    "high-at-the-end": b'"Connection \\ud83d"',
    "pair-reversed": b'"\\ude00\\ud83d"',
}


@pytest.mark.parametrize(("endpoint", "name", "literal"), matrix("string_fields", LONE_SURROGATES))
def test_a_lone_surrogate_in_a_string_is_422(send, world, assert_refused, endpoint, name, literal):
    """A lone surrogate is no Unicode text: it can be neither stored nor hashed."""
    data = splice(endpoint.body(world), name, literal)
    assert_refused(lambda: send(endpoint, world, data), 422, name)


INVALID_UTF8 = {
    "ff-fe": b"\xff\xfe",
    "lone-ff": b"\xff",
    "lone-continuation": b"\x80",
    "overlong-slash": b"\xc0\xaf",
    "truncated-euro": b"\xe2\x82",
    "encoded-surrogate": b"\xed\xa0\x80",
    "beyond-u10ffff": b"\xf4\x90\x80\x80",
}


@pytest.mark.parametrize(
    ("endpoint", "name", "sequence"),
    [
        pytest.param(endpoint, name, sequence, id=f"{endpoint}-{name or 'a-key'}-{label}")
        for endpoint in WITH_BODY
        for name in (*endpoint.string_fields, None)
        for label, sequence in INVALID_UTF8.items()
    ],
)
def test_invalid_utf8_in_the_body_is_400(send, world, assert_refused, endpoint, name, sequence):
    body = endpoint.body(world)
    if name is None:
        data = encode(body)[:-1] + b', "no' + sequence + b'te": 1}'
    else:
        data = splice(body, name, b'"Conn' + sequence + b'ection"')
    assert_refused(lambda: send(endpoint, world, data), 400)


# --- Text is stored and returned verbatim -----------------------------------------------------

PAYLOADS = {
    "sql-drop": "'; DROP TABLE tickets; --",
    "sql-or-double-quote": '" OR 1=1 --',
    "sql-or-single-quote": "' OR '1'='1",
    "sql-bobby-tables": "Robert'); DROP TABLE ticket_replies;--",
    "sql-delete": "1; DELETE FROM users",
    "sql-union": "x' UNION SELECT password_hash, email FROM users --",
    "html-script": "<script>alert(1)</script>",
    "html-img-onerror": '<img src=x onerror="alert(1)">',
    "html-entities": "&lt;b&gt; &amp; &#39; &quot;",
    "templates": "{{7*7}} ${7*7} <%= 7*7 %> %s %n",
    "escapes-as-text": "\\u0000 \\x00 \\n are text, not characters",
    "quotes-and-backslashes": "' \" ` \\ \\\\ ''",
    "cyrillic": "Ошибка подключения",
    "arabic-rtl": "لا يوجد اتصال بالإنترنت",
    "hebrew-rtl": "אין חיבור לאינטרנט",
    "chinese": "无法连接到互联网",
    "japanese": "インターネットに接続できません",
    "korean": "인터넷 연결 불가",
    "emoji": "Router 🔥🚀 down",
    "emoji-zwj-family": "👨‍👩‍👧‍👦 family plan",
    "flag": "🇺🇦 Kyiv branch",
    "combining-accent-kept-decomposed": "Cafe\u0301 Wi-Fi",
    "precomposed-accent": "Café Wi-Fi",
    "astral-math-letters": "\U0001d518\U0001d52b\U0001d526 outage",  # Fraktur "Uni"
    "bidi-override": "\u202eenilno\u202c modem",
    "zero-width": "zero\u200bwidth\u200djoiner",
}
LONG_TEXT = "Line one\r\nline two\n\tindented"
TEXTS = [
    *[pytest.param(text, text, text, id=label) for label, text in PAYLOADS.items()],
    pytest.param("x", "d", "m", id="shortest"),
    pytest.param(" " + "a" * 255 + "\t", "d" * 10_000 + "\n", " " + "m" * 10_000, id="longest"),
    pytest.param("😀" * 255, " " + "é" * 10_000, "网" * 10_000 + " ", id="longest-multibyte"),
    pytest.param("Line breaks", LONG_TEXT, LONG_TEXT, id="line-breaks-and-tabs"),
    pytest.param(
        "Separators", "One\u2028two\u2029three", "One\u2028two", id="unicode-line-separators"
    ),
]


@pytest.mark.parametrize(("title", "description", "message"), TEXTS)
def test_text_is_stored_and_returned_verbatim_but_trimmed(
    app, send, world, fetch, rows, title, description, message
):
    body = {**CREATE.body(world), "title": title, "description": description}
    created = send(CREATE, world, body)
    assert created.status_code == 201, created.get_json()
    ticket = replace(world, ticket_id=created.get_json()["data"]["id"])
    replied = send(REPLY, ticket, {**REPLY.body(world), "message": message})
    assert replied.status_code == 201, replied.get_json()

    shown = send(FETCH, ticket).get_json()["data"]
    expected = (title.strip(), description.strip(), message.strip())
    assert (shown["title"], shown["description"], shown["replies"][0]["message"]) == expected
    assert expected[0] in [item["title"] for item in send(LIST, world).get_json()["data"]]
    stored = fetch(Ticket, ticket.ticket_id)
    assert (stored["title"], stored["description"]) == expected[:2]
    assert [reply["message"] for reply in rows(TicketReply)] == [expected[2]]
    live = [row for row in rows(Ticket) if row["deleted_at"] is None and row["kind"] == "ticket"]
    assert len(live) == 2
    with app.app_context():
        assert set(inspect(db.engine).get_table_names()) >= set(db.metadata.tables)


@pytest.mark.parametrize("payload", cases(PAYLOADS))
def test_text_in_an_update_is_stored_and_returned_verbatim(send, world, fetch, payload):
    response = send(UPDATE, world, {"title": payload, "description": payload})
    assert response.status_code == 200, response.get_json()
    shown = send(FETCH, world).get_json()["data"]
    assert (shown["title"], shown["description"]) == (payload, payload)
    stored = fetch(Ticket, world.ticket_id)
    assert (stored["title"], stored["description"]) == (payload, payload)


def test_an_escaped_surrogate_pair_is_the_character_it_encodes(send, world, fetch):
    created = send(CREATE, world, splice(CREATE.body(world), "title", b'"\\ud83d\\ude00 escaped"'))
    assert created.status_code == 201, created.get_json()
    assert fetch(Ticket, created.get_json()["data"]["id"])["title"] == "😀 escaped"


@pytest.mark.parametrize(
    ("email", "password"),
    [
        pytest.param("' OR '1'='1", "x", id="email-or"),
        pytest.param("{email}' --", "x", id="email-comment"),
        pytest.param("{email}", "' OR '1'='1", id="password-or"),
        pytest.param("<script>alert(1)</script>", "x", id="email-html"),
        pytest.param("%", "x", id="email-like-wildcard"),
        pytest.param("*", "*", id="wildcards"),
    ],
)
def test_sql_and_html_at_login_are_a_wrong_password(
    app, send, world, assert_refused, email, password
):
    body = {"email": email.format(email=world.caller.email), "password": password}
    assert "errors" not in assert_refused(lambda: send(LOGIN, world, body), 401).get_json()
    with app.app_context():
        assert set(inspect(db.engine).get_table_names()) >= set(db.metadata.tables)


# --- Query strings: integers in plain ASCII digits, each parameter once -----------------------

NOT_A_QUERY_INTEGER = {
    "word": "abc",
    "empty": "",
    "leading-space": " 1",
    "trailing-space": "1 ",
    "plus-sign": "+1",
    "decimal": "1.5",
    "integral-decimal": "1.0",
    "exponent": "1e3",
    "hex": "0x1",
    "fullwidth": "\uff11",
    "arabic-indic": "\u0661",
    "nul": "1\x00",
    "true": "true",
    "null": "null",
    "list": "[1]",
    "sql-or": "1 OR 1=1",
    "sql-drop": "1; DROP TABLE tickets; --",
    "5000-digits": "9" * 5000,
}


def query_of(endpoint, world, name=None) -> dict:
    """The endpoint's own query string (or none), without `name`."""
    query = endpoint.query(world) if endpoint.query else {}
    return {key: str(value) for key, value in query.items() if key != name}


@pytest.mark.parametrize(
    ("endpoint", "name", "value"),
    matrix("query_integers", NOT_A_QUERY_INTEGER, endpoints=WITH_QUERY)
    + matrix("query_integers", OUT_OF_RANGE, endpoints=WITH_QUERY, skip=is_a_code)
    + matrix(
        "codes",
        lambda endpoint, name: {"above-the-codes": max(endpoint.codes[name]) + 1},
        endpoints=[endpoint for endpoint in WITH_QUERY if not endpoint.body],
    ),
)
def test_a_query_parameter_that_is_no_valid_integer_is_422(
    send, world, assert_refused, endpoint, name, value
):
    query = {**query_of(endpoint, world), name: value}
    assert_refused(lambda: send(endpoint, world, query_string=query), 422, name)


@pytest.mark.parametrize(
    ("endpoint", "name", "value"), matrix("query_integers", {"%FF": None}, WITH_QUERY)
)
def test_invalid_utf8_in_a_query_parameter_is_422(
    send, world, assert_refused, endpoint, name, value
):
    query = urlencode(query_of(endpoint, world, name)) + f"&{name}=%FF"
    assert_refused(lambda: send(endpoint, world, query_string=query), 422, name)


@pytest.mark.parametrize(
    ("endpoint", "name", "other"),
    matrix("query_integers", {"same": None, "different": "2"}, WITH_QUERY),
)
def test_a_query_parameter_given_twice_is_422(send, world, assert_refused, endpoint, name, other):
    value = str(endpoint.query(world).get(name, 1)) if endpoint.query else "1"
    query = [*query_of(endpoint, world, name).items(), (name, value), (name, other or value)]
    assert_refused(lambda: send(endpoint, world, query_string=query), 422, name)


@pytest.mark.parametrize("endpoint", WITH_QUERY, ids=str)
def test_an_unknown_query_parameter_is_422(send, world, assert_refused, endpoint):
    query = {**query_of(endpoint, world), "sort": "title"}
    assert_refused(lambda: send(endpoint, world, query_string=query), 422, "sort")


# --- Paths: ticket ids, unknown routes, wrong methods ----------------------------------------

# The same digits in other scripts: the router's \d and Python's int() both accept them.
FULLWIDTH_DIGITS = str.maketrans("0123456789", "".join(chr(0xFF10 + d) for d in range(10)))
ARABIC_INDIC_DIGITS = str.maketrans("0123456789", "".join(chr(0x0660 + d) for d in range(10)))
# Ids that name no live ticket: unused, out of the column's range, not integers, not ASCII.
NO_SUCH_TICKET = {
    "unused-id": lambda w: str(w.ticket_id + 1000),
    "max-id-unused": lambda w: str(MAX_ID),
    **{label: (lambda w, n=n: str(n)) for label, n in OUT_OF_RANGE.items()},
    "10^20": lambda w: str(10**20),
    "5000-digits": lambda w: "9" * 5000,
    "word": lambda w: "abc",
    "decimal": lambda w: f"{w.ticket_id}.0",
    "exponent": lambda w: "1e3",
    "hex": lambda w: "0x1",
    "plus-sign": lambda w: f"+{w.ticket_id}",
    "leading-space": lambda w: f"%20{w.ticket_id}",
    "trailing-nul": lambda w: f"{w.ticket_id}%00",
    "nul": lambda w: "%00",
    "invalid-utf8": lambda w: "%FF",
    "sql": lambda w: f"{w.ticket_id}%20OR%201=1",
    "fullwidth-digits": lambda w: str(w.ticket_id).translate(FULLWIDTH_DIGITS),
    "arabic-indic-digits": lambda w: str(w.ticket_id).translate(ARABIC_INDIC_DIGITS),
}


@pytest.mark.parametrize("ticket_id", cases(NO_SUCH_TICKET))
@pytest.mark.parametrize("endpoint", PER_TICKET, ids=str)
def test_a_ticket_id_that_names_no_ticket_is_404(send, world, assert_refused, endpoint, ticket_id):
    assert_refused(lambda: send(endpoint, world, ticket_id=ticket_id(world)), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/api/v1"),
        ("GET", "/api/v1/ticket"),
        ("GET", "/api/v2/tickets"),
        ("POST", "/api/v1/tickets/{ticket}/comments"),
        ("GET", "/api/v1/tickets/{ticket}/status/history"),
        ("GET", "/api/v1/auth/profile"),
    ],
)
def test_an_unknown_route_is_404(client, world, assert_refused, method, path):
    url = path.format(ticket=world.ticket_id)
    headers = world.caller.headers
    assert_refused(lambda: client.open(url, method=method, json={}, headers=headers), 404)


# Each route of the catalogue, and the operations on it.
SERVED: dict[str, list] = {}
for _endpoint in ENDPOINTS:
    SERVED.setdefault(_endpoint.route[1], []).append(_endpoint)
NOT_SERVED = [
    pytest.param(method, route, id=f"{method} {route}")
    for route, endpoints in sorted(SERVED.items())
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE")
    if method not in {endpoint.method for endpoint in endpoints}
    and (method.lower(), route) not in OUTSIDE_THE_MATRICES
]


@pytest.mark.parametrize(("method", "route"), NOT_SERVED)
def test_a_method_the_path_does_not_serve_is_405_with_allow(
    client, world, assert_refused, method, route
):
    url, body, headers = world.path_of(SERVED[route][0]), CREATE.body(world), world.caller.headers
    response = assert_refused(
        lambda: client.open(url, method=method, json=body, headers=headers), 405
    )
    allowed = set(response.headers["Allow"].split(", "))
    assert method not in allowed
    assert allowed >= {endpoint.method for endpoint in SERVED[route]}
