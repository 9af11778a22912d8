"""desk rules: ticket types, SLA policies and their clock, waiting on the subscriber, tags,
canned replies, auto-close

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05

Tickets gain a type (the key of one in the ISP's catalogue, `other` by default), tags, the
SLA's deadlines and bookkeeping, and status 4 (waiting on the subscriber). The kept counts
gain the type, so the stats count by it without reading tickets: ticket_counts is made again
with it (its rows worked out from the tickets), and the triggers of 0006 and 0009 that keep
it are written again around the new key. History gains the SLA events.
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

OLD_ACTIONS = (
    *("created", "updated", "status_changed", "assigned", "replied", "noted", "deleted"),
    *("restored", "linked", "unlinked", "incident_opened", "incident_updated"),
    *("incident_resolved", "outage", "incident_suggested"),
)
NEW_ACTIONS = (*OLD_ACTIONS, "sla_warning", "sla_breached")
OLD_STATUSES, NEW_STATUSES = (0, 1, 2, 3), (0, 1, 2, 3, 4)

# The kept counts' key, before and after: the columns of ticket_counts and, for each, its
# expression over a ticket row.
OLD_KEY = ("isp_id", "branch_id", "status", "priority", "assigned")
NEW_KEY = (*OLD_KEY, "type")


def _of(key, row: str) -> str:
    """The key's values over a ticket row (`NEW.`, `OLD.` or a table's own columns: '')."""
    return ", ".join(f"{row}assignee_id IS NOT NULL" if c == "assigned" else row + c for c in key)


def _postgresql(key) -> str:
    columns, n = ", ".join(key), ", ".join(str(i + 1) for i in range(len(key)))
    upsert = (
        f"ON CONFLICT ({columns}) DO UPDATE SET tickets = ticket_counts.tickets + excluded.tickets"
    )
    watched = ", ".join(
        c
        for c in ("isp_id", "branch_id", "status", "priority", "assignee_id", "deleted_at", "type")
        if c != "type" or "type" in key
    )
    return f"""
CREATE OR REPLACE FUNCTION tickets_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ticket_counts ({columns}, tickets)
    SELECT {_of(key, "")}, count(*)
    FROM inserted WHERE deleted_at IS NULL
    GROUP BY {n} ORDER BY {n}
    {upsert};
    INSERT INTO ticket_history (ticket_id, user_id, key_id, action, created_at)
    SELECT id, created_by_id, created_by_key_id, 'created', created_at FROM inserted ORDER BY id;
    INSERT INTO ticket_history (ticket_id, user_id, key_id, action, field, new, created_at)
    SELECT id, created_by_id, created_by_key_id, 'assigned', 'assignee_id', to_json(assignee_id),
           created_at
    FROM inserted WHERE assignee_id IS NOT NULL ORDER BY id;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION tickets_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ticket_counts ({columns}, tickets)
    SELECT {columns}, sum(delta)
    FROM (
        SELECT {_of(key, "OLD.")}, -1 WHERE OLD.deleted_at IS NULL
        UNION ALL
        SELECT {_of(key, "NEW.")}, 1 WHERE NEW.deleted_at IS NULL
    ) AS moved ({columns}, delta)
    GROUP BY {n} HAVING sum(delta) <> 0 ORDER BY {n}
    {upsert};
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS tickets_after_update ON tickets;
CREATE TRIGGER tickets_after_update AFTER UPDATE OF {watched} ON tickets
FOR EACH ROW EXECUTE FUNCTION tickets_after_update();

CREATE OR REPLACE FUNCTION tickets_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ticket_counts ({columns}, tickets)
    SELECT {_of(key, "OLD.")}, -1 WHERE OLD.deleted_at IS NULL
    {upsert};
    RETURN NULL;
END $$;
"""


def _sqlite(key) -> list[str]:
    columns = ", ".join(key)
    upsert = (
        f"ON CONFLICT ({columns}) DO UPDATE SET tickets = ticket_counts.tickets + excluded.tickets"
    )
    watched = "isp_id, branch_id, status, priority, assignee_id, deleted_at"
    watched += ", type" if "type" in key else ""
    return [
        f"""
CREATE TRIGGER tickets_after_insert AFTER INSERT ON tickets FOR EACH ROW BEGIN
    INSERT INTO ticket_counts ({columns}, tickets)
    SELECT {_of(key, "NEW.")}, 1 WHERE NEW.deleted_at IS NULL
    {upsert};
    INSERT INTO ticket_history (ticket_id, user_id, key_id, action, created_at)
    VALUES (NEW.id, NEW.created_by_id, NEW.created_by_key_id, 'created', NEW.created_at);
    INSERT INTO ticket_history (ticket_id, user_id, key_id, action, field, new, created_at)
    SELECT NEW.id, NEW.created_by_id, NEW.created_by_key_id, 'assigned', 'assignee_id',
           NEW.assignee_id, NEW.created_at
    WHERE NEW.assignee_id IS NOT NULL;
END""",
        f"""
CREATE TRIGGER tickets_after_update AFTER UPDATE OF {watched} ON tickets FOR EACH ROW BEGIN
    INSERT INTO ticket_counts ({columns}, tickets)
    SELECT {_of(key, "OLD.")}, -1 WHERE OLD.deleted_at IS NULL
    {upsert};
    INSERT INTO ticket_counts ({columns}, tickets)
    SELECT {_of(key, "NEW.")}, 1 WHERE NEW.deleted_at IS NULL
    {upsert};
END""",
        f"""
CREATE TRIGGER tickets_after_delete AFTER DELETE ON tickets FOR EACH ROW BEGIN
    INSERT INTO ticket_counts ({columns}, tickets)
    SELECT {_of(key, "OLD.")}, -1 WHERE OLD.deleted_at IS NULL
    {upsert};
END""",
    ]


def _count_by(key) -> None:
    """ticket_counts made again for this key, from the live tickets, and its triggers."""
    postgresql = op.get_bind().dialect.name == "postgresql"
    if not postgresql:
        for event in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS tickets_after_{event}")
    op.drop_table("ticket_counts")
    typed = [sa.Column("type", sa.String(length=40), nullable=False)] if "type" in key else []
    op.create_table(
        "ticket_counts",
        sa.Column("isp_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("branch_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("status", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("priority", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("assigned", sa.Boolean(), autoincrement=False, nullable=False),
        *typed,
        sa.Column("tickets", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(*key, name=op.f("pk_ticket_counts")),
    )
    n = ", ".join(str(i + 1) for i in range(len(key)))
    op.execute(
        f"INSERT INTO ticket_counts ({', '.join(key)}, tickets) "
        f"SELECT {_of(key, '')}, count(*) FROM tickets WHERE deleted_at IS NULL GROUP BY {n}"
    )
    if postgresql:
        op.execute(_postgresql(key))
    else:
        for statement in _sqlite(key):
            op.execute(statement)


def _in(column: str, values) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _replace_check(table: str, name: str, column: str, old, new) -> None:
    """A CHECK of `column IN (...)` allows `new` instead of `old`. On SQLite the table's
    definition is edited in place, as 0010 does for the history's actions (a rebuild would
    trip over the triggers on tickets)."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        op.drop_constraint(op.f(f"ck_{table}_{name}"), table, type_="check")
        op.create_check_constraint(name, table, _in(column, new))
        return
    where = f"type = 'table' AND name = '{table}'"
    definition = bind.exec_driver_sql(f"SELECT sql FROM sqlite_master WHERE {where}").scalar()
    if _in(column, old) not in definition:
        raise RuntimeError(f"{table}'s check of its {column} is not the one expected")
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.exec_driver_sql(
        f"UPDATE sqlite_master SET sql = ? WHERE {where}",
        (definition.replace(_in(column, old), _in(column, new)),),
    )
    bind.exec_driver_sql(f"PRAGMA schema_version = {version + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")


def _ticket_columns() -> tuple:
    return (
        sa.Column("type", sa.String(length=40), server_default="other", nullable=False),
        sa.Column("tags", sa.JSON(), server_default="[]", nullable=False),
        sa.Column("response_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due_at_manual", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("waiting_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("waited_seconds", sa.Integer(), server_default="0", nullable=False),
        sa.Column("response_warn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due_warn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sla_sent", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("sla_next_at", sa.DateTime(timezone=True), nullable=True),
    )


def _settings_columns() -> tuple:
    return (
        sa.Column("time_zone", sa.String(length=64), server_default="UTC", nullable=False),
        sa.Column("holidays", sa.JSON(), server_default="[]", nullable=False),
        sa.Column("auto_close_days", sa.SmallInteger(), server_default="7", nullable=False),
    )


# (name, columns, where) of the new partial indexes on tickets.
TICKET_INDEXES = (
    (
        "ix_tickets_live_scope_type",
        ["isp_id", "branch_id", "type", "created_at", "id"],
        "deleted_at IS NULL",
    ),
    ("ix_tickets_sla_next", ["sla_next_at"], "sla_next_at IS NOT NULL"),
    ("ix_tickets_resolved", ["resolved_at"], "status = 2 AND deleted_at IS NULL"),
)


def upgrade() -> None:
    op.create_table(
        "ticket_types",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("isp_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("default_priority", sa.SmallInteger(), nullable=False),
        sa.Column("default_assignee_id", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "default_priority IN (1, 2, 3)", name=op.f("ck_ticket_types_default_priority")
        ),
        sa.ForeignKeyConstraint(
            ["default_assignee_id"],
            ["users.id"],
            name=op.f("fk_ticket_types_default_assignee_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_types")),
        sa.UniqueConstraint("isp_id", "key", name="uq_ticket_types_isp_id_key"),
    )
    op.create_table(
        "sla_policies",
        sa.Column("isp_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("priority", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("first_response_minutes", sa.Integer(), nullable=False),
        sa.Column("resolve_minutes", sa.Integer(), nullable=False),
        sa.Column("business_hours", sa.JSON(), nullable=True),
        sa.Column("holidays", sa.JSON(), server_default="[]", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("priority IN (1, 2, 3)", name=op.f("ck_sla_policies_priority")),
        sa.CheckConstraint(
            "first_response_minutes >= 0 AND resolve_minutes >= 0",
            name=op.f("ck_sla_policies_minutes"),
        ),
        sa.PrimaryKeyConstraint("isp_id", "type", "priority", name=op.f("pk_sla_policies")),
    )
    op.create_table(
        "ticket_tags",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=40), nullable=False),
        sa.Column("isp_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_ticket_tags_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ticket_id", "tag", name=op.f("pk_ticket_tags")),
    )
    op.create_index("ix_ticket_tags_isp_id_tag", "ticket_tags", ["isp_id", "tag", "ticket_id"])
    op.create_table(
        "canned_replies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("isp_id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("branch_id", sa.Integer(), nullable=True),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("tags", sa.JSON(), server_default="[]", nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "scope IN ('isp', 'branch', 'personal')", name=op.f("ck_canned_replies_scope")
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_canned_replies_created_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_canned_replies_owner_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canned_replies")),
    )
    op.create_index("ix_canned_replies_isp_id_id", "canned_replies", ["isp_id", "id"])
    for column in _ticket_columns():
        op.add_column("tickets", column)
    for column in _settings_columns():
        op.add_column("isp_settings", column)
    for name, columns, where in TICKET_INDEXES:
        op.create_index(
            name,
            "tickets",
            columns,
            postgresql_where=sa.text(where),
            sqlite_where=sa.text(where),
        )
    _replace_check("tickets", "status", "status", OLD_STATUSES, NEW_STATUSES)
    _replace_check("ticket_history", "action", "action", OLD_ACTIONS, NEW_ACTIONS)
    _count_by(NEW_KEY)


def downgrade() -> None:
    # What only the new schema can hold goes first: the SLA's events, and waiting tickets
    # (back to in progress, which is what they were before they waited).
    added = ", ".join(f"'{action}'" for action in NEW_ACTIONS if action not in OLD_ACTIONS)
    op.execute(f"DELETE FROM ticket_history WHERE action IN ({added})")
    op.execute("UPDATE tickets SET status = 1 WHERE status = 4")
    _count_by(OLD_KEY)
    _replace_check("ticket_history", "action", "action", NEW_ACTIONS, OLD_ACTIONS)
    _replace_check("tickets", "status", "status", NEW_STATUSES, OLD_STATUSES)
    for name, _columns, _where in TICKET_INDEXES:
        op.drop_index(name, table_name="tickets")
    for column in _settings_columns():
        op.drop_column("isp_settings", column.name)
    for column in _ticket_columns():
        op.drop_column("tickets", column.name)
    op.drop_index("ix_canned_replies_isp_id_id", table_name="canned_replies")
    op.drop_table("canned_replies")
    op.drop_index("ix_ticket_tags_isp_id_tag", table_name="ticket_tags")
    op.drop_table("ticket_tags")
    op.drop_table("sla_policies")
    op.drop_table("ticket_types")
