"""the subscriber's side: links to a ticket without a login, replies and history entries by
the subscriber, attachments

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05

A subscriber's link is kept as its token's hash. Replies and history entries written by the
subscriber carry their name (author_name; user_id stays the ticket's creator, for the
record, so both keep their NOT NULL). Attachments are rows naming a blob stored once per ISP
and SHA-256; a reply keeps its own list of them. The ISP's settings gain the name staff
replies show to subscribers.
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

OLD_ACTIONS = (
    *("created", "updated", "status_changed", "assigned", "replied", "noted", "deleted"),
    *("restored", "linked", "unlinked", "incident_opened", "incident_updated"),
    *("incident_resolved", "outage", "incident_suggested", "sla_warning", "sla_breached"),
)
NEW_ACTIONS = (*OLD_ACTIONS, "link_created", "link_revoked", "attached", "attachment_deleted")


def _in(column: str, values) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _replace_check(table: str, name: str, column: str, old, new) -> None:
    """As in 0011: a CHECK of `column IN (...)` allows `new` instead of `old`, edited in place
    on SQLite (a rebuild would trip over the triggers)."""
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


def upgrade() -> None:
    op.create_table(
        "subscriber_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("isp_id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_subscriber_links_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_subscriber_links_created_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["key_id"], ["api_keys.id"], name=op.f("fk_subscriber_links_key_id_api_keys")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriber_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_subscriber_links_token_hash")),
    )
    op.create_index("ix_subscriber_links_ticket_id", "subscriber_links", ["ticket_id"])
    op.create_table(
        "attachment_blobs",
        sa.Column("isp_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("isp_id", "sha256", name=op.f("pk_attachment_blobs")),
    )
    op.create_table(
        "attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("isp_id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("reply_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("uploaded_by_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=True),
        sa.Column("by_subscriber", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_attachments_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["reply_id"],
            ["ticket_replies.id"],
            name=op.f("fk_attachments_reply_id_ticket_replies"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["uploaded_by_id"], ["users.id"], name=op.f("fk_attachments_uploaded_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["key_id"], ["api_keys.id"], name=op.f("fk_attachments_key_id_api_keys")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachments")),
    )
    op.create_index("ix_attachments_ticket_id_id", "attachments", ["ticket_id", "id"])
    op.create_index("ix_attachments_isp_id_sha256", "attachments", ["isp_id", "sha256"])
    op.create_index("ix_attachments_reply_id", "attachments", ["reply_id"])
    op.add_column("ticket_replies", sa.Column("author_name", sa.String(255), nullable=True))
    op.add_column(
        "ticket_replies", sa.Column("attachments", sa.JSON(), server_default="[]", nullable=False)
    )
    op.add_column("ticket_history", sa.Column("author_name", sa.String(255), nullable=True))
    op.add_column(
        "isp_settings",
        sa.Column(
            "staff_display_name", sa.String(length=100), server_default="Support", nullable=False
        ),
    )
    _replace_check("ticket_history", "action", "action", OLD_ACTIONS, NEW_ACTIONS)


def downgrade() -> None:
    # What only the new schema can hold goes first: the new history entries, and the
    # subscriber's replies and entries (the old schema could not say who wrote them).
    added = ", ".join(f"'{action}'" for action in NEW_ACTIONS if action not in OLD_ACTIONS)
    op.execute(f"DELETE FROM ticket_history WHERE action IN ({added})")
    op.execute("DELETE FROM ticket_history WHERE author_name IS NOT NULL")
    op.execute(
        "UPDATE tickets SET reply_count = reply_count - (SELECT count(*) FROM ticket_replies "
        "AS r WHERE r.ticket_id = tickets.id AND r.author_name IS NOT NULL) WHERE id IN "
        "(SELECT ticket_id FROM ticket_replies WHERE author_name IS NOT NULL)"
    )
    op.execute("DELETE FROM ticket_replies WHERE author_name IS NOT NULL")
    _replace_check("ticket_history", "action", "action", NEW_ACTIONS, OLD_ACTIONS)
    op.drop_column("isp_settings", "staff_display_name")
    op.drop_column("ticket_history", "author_name")
    op.drop_column("ticket_replies", "attachments")
    op.drop_column("ticket_replies", "author_name")
    op.drop_index("ix_attachments_reply_id", table_name="attachments")
    op.drop_index("ix_attachments_isp_id_sha256", table_name="attachments")
    op.drop_index("ix_attachments_ticket_id_id", table_name="attachments")
    op.drop_table("attachments")
    op.drop_table("attachment_blobs")
    op.drop_index("ix_subscriber_links_ticket_id", table_name="subscriber_links")
    op.drop_table("subscriber_links")
