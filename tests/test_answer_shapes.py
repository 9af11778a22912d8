"""One answer shape per resource: the fast path (tickets_service/fastpath.py) writes exactly what
marshmallow's own dump of the Out schema writes, for every Out schema, over generated rows
(None where allowed, extremes, non-ASCII text, timestamps at both ends of their range), given
as mappings or as rows of the schema's columns; and the fast reads' columns follow the schemas.
"""

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import fields

from tickets_service import queries, schemas
from tickets_service.fastpath import dumper
from tickets_service.fields import Timestamp

FIRST, LAST = datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59)


def out_schemas(base=schemas.OutSchema) -> list:
    found = []
    for cls in base.__subclasses__():
        found += [cls, *out_schemas(cls)]
    return found


OUT_SCHEMAS = sorted(set(out_schemas()), key=lambda cls: cls.__name__)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=5,
)


def values_of(field: fields.Field):
    """What a row may hold for this field, as the database or the views hand it over."""
    if isinstance(field, Timestamp):
        moments = st.datetimes(min_value=FIRST, max_value=LAST)
        value = (
            moments
            | moments.map(lambda moment: moment.replace(tzinfo=UTC))
            | st.sampled_from([FIRST, LAST, LAST.replace(tzinfo=UTC)])
        )
    elif isinstance(field, fields.Nested):
        value = rows_of(type(field.schema))
    elif isinstance(field, fields.List):
        inner = field.inner
        items = (
            rows_of(type(inner.schema)) if isinstance(inner, fields.Nested) else values_of(inner)
        )
        value = st.lists(items, max_size=3)
    elif isinstance(field, fields.Dict):
        value = st.dictionaries(st.sampled_from(["0", "1", "2", "3"]), st.integers(0, 2**31))
    elif isinstance(field, fields.Boolean):
        value = st.booleans()
    elif isinstance(field, fields.Integer):
        value = st.integers(-(2**31), 2**31 - 1) | st.sampled_from([0, -(2**31), 2**31 - 1])
    elif isinstance(field, fields.String):
        value = st.text() | st.sampled_from(["", "Ünïcödé ✓ 中文 🙂", "\u2028", "a" * 10_000])
    else:  # Raw
        value = JSON
    return value | st.none() if field.allow_none else value


def rows_of(schema):
    shape = {name: values_of(field) for name, field in schema().dump_fields.items()}
    return st.fixed_dictionaries(shape)


@pytest.mark.parametrize("schema", OUT_SCHEMAS, ids=lambda cls: cls.__name__)
def test_the_fast_dump_is_marshmallows_dump(schema):
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(rows_of(schema), min_size=1, max_size=3))
    def check(rows):
        expected = schema(many=True).dump(rows)
        assert dumper(schema, True)(rows) == expected
        assert [dumper(schema)(row) for row in rows] == expected
        # A row of the schema's columns, by position (as the fast reads fetch it).
        names = list(schema().dump_fields)
        assert [dumper(schema)(tuple(row[n] for n in names)) for row in rows] == expected

    check()


def labels(columns) -> list[str]:
    return [column.name for column in columns]


def test_the_fast_reads_select_each_answers_fields_in_its_order():
    assert labels(queries.SUMMARY) == list(schemas.TicketSummaryOut().dump_fields)
    detail = [name for name in schemas.TicketOut().dump_fields if name != "replies"]
    assert labels(queries.DETAIL) == [*detail, "version"]
    assert list(queries._REPLY_ROWS.selected_columns.keys()) == list(schemas.ReplyOut().dump_fields)


def test_the_dump_writes_timestamps_at_both_ends_as_the_api_does():
    row = {name: None for name in schemas.TicketSummaryOut().dump_fields}
    row.update(created_at=FIRST, updated_at=LAST.replace(tzinfo=UTC))
    dumped = dumper(schemas.TicketSummaryOut)(row)
    assert (dumped["created_at"], dumped["updated_at"]) == (
        "0001-01-01 00:00:00",
        "9999-12-31 23:59:59",
    )


def test_the_replies_the_database_writes_are_the_schemas_dump(
    app, client, staff, make_ticket, make_reply
):
    """On PostgreSQL Fetch Ticket embeds the replies as JSON the database built from ReplyOut
    (json_object): it must read exactly as marshmallow's dump of the same rows."""
    ticket_id = make_ticket(staff)
    for message in ("Ünïcödé ✓ 中文 🙂", "line one\nline two", 'quote " and \\ slash'):
        make_reply(ticket_id, staff, message=message)
    answered = client.get(f"/api/v1/tickets/{ticket_id}", headers=staff.headers).get_json()
    with app.test_request_context():
        rows = queries.reply_rows(ticket_id, limit=100)
    assert answered["data"]["replies"] == schemas.ReplyOut(many=True).dump(rows)
    assert answered["data"]["replies"][0]["message"] == "Ünïcödé ✓ 中文 🙂"
