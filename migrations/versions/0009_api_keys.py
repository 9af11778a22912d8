"""API keys: credentials for programs, and the key behind a ticket, a reply or a history entry

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03

A key acts for the admin who made it: user_id columns keep naming that person, and the new
key_id columns say the key did it. A ticket's first history entries (written by the insert
trigger of 0006) now carry its key too.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Where a key acts: (table, its new column).
KEYED = (
    ("tickets", "created_by_key_id"),
    ("ticket_replies", "key_id"),
    ("ticket_history", "key_id"),
)

POSTGRESQL_HISTORY = """
CREATE OR REPLACE FUNCTION tickets_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ticket_counts (isp_id, branch_id, status, priority, assigned, tickets)
    SELECT isp_id, branch_id, status, priority, assignee_id IS NOT NULL, count(*)
    FROM inserted WHERE deleted_at IS NULL
    GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (isp_id, branch_id, status, priority, assigned)
    DO UPDATE SET tickets = ticket_counts.tickets + excluded.tickets;
    INSERT INTO ticket_history (ticket_id, user_id{key_column}, action, created_at)
    SELECT id, created_by_id{key}, 'created', created_at FROM inserted ORDER BY id;
    INSERT INTO ticket_history (ticket_id, user_id{key_column}, action, field, new, created_at)
    SELECT id, created_by_id{key}, 'assigned', 'assignee_id', to_json(assignee_id), created_at
    FROM inserted WHERE assignee_id IS NOT NULL ORDER BY id;
    RETURN NULL;
END $$;
"""

SQLITE_HISTORY = """
CREATE TRIGGER tickets_after_insert AFTER INSERT ON tickets FOR EACH ROW BEGIN
    INSERT INTO ticket_counts (isp_id, branch_id, status, priority, assigned, tickets)
    SELECT NEW.isp_id, NEW.branch_id, NEW.status, NEW.priority, NEW.assignee_id IS NOT NULL, 1
    WHERE NEW.deleted_at IS NULL
    ON CONFLICT (isp_id, branch_id, status, priority, assigned)
    DO UPDATE SET tickets = ticket_counts.tickets + excluded.tickets;
    INSERT INTO ticket_history (ticket_id, user_id{key_column}, action, created_at)
    VALUES (NEW.id, NEW.created_by_id{key}, 'created', NEW.created_at);
    INSERT INTO ticket_history (ticket_id, user_id{key_column}, action, field, new, created_at)
    SELECT NEW.id, NEW.created_by_id{key}, 'assigned', 'assignee_id', NEW.assignee_id,
           NEW.created_at
    WHERE NEW.assignee_id IS NOT NULL;
END"""


def _history_trigger(keyed: bool) -> None:
    """The insert trigger of 0006, with the ticket's key in its history entries or (keyed
    false: 0006's own) without."""
    postgresql = op.get_bind().dialect.name == "postgresql"
    key = (", created_by_key_id" if postgresql else ", NEW.created_by_key_id") if keyed else ""
    key_column = ", key_id" if keyed else ""
    if postgresql:
        op.execute(POSTGRESQL_HISTORY.format(key=key, key_column=key_column))
    else:
        op.execute("DROP TRIGGER tickets_after_insert")
        op.execute(SQLITE_HISTORY.format(key=key, key_column=key_column))


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("isp_id", sa.Integer(), nullable=False),
        sa.Column("branch_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rate_limit", sa.Integer(), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_ip", sa.String(length=45), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_api_keys_created_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
    )
    op.create_index("ix_api_keys_isp_id_id", "api_keys", ["isp_id", "id"])
    for table, column in KEYED:
        # SQLite adds a column's foreign key only with the column, in its definition.
        op.execute(
            f"ALTER TABLE {table} ADD COLUMN {column} INTEGER "
            f"CONSTRAINT fk_{table}_{column}_api_keys REFERENCES api_keys (id)"
        )
    _history_trigger(keyed=True)
    op.create_index("ix_audit_entries_object", "audit_entries", ["object_type", "object_id"])


def downgrade() -> None:
    op.drop_index("ix_audit_entries_object", table_name="audit_entries")
    _history_trigger(keyed=False)
    for table, column in KEYED:
        op.drop_column(table, column)  # and its foreign key
    op.drop_index("ix_api_keys_isp_id_id", table_name="api_keys")
    op.drop_table("api_keys")
