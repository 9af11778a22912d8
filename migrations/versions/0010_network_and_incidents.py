"""the network behind the tickets: network objects, what serves each subscriber, links from
tickets to objects, incidents with their children and affected subscribers

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04

Tickets gain a kind (ticket or incident) and a parent (the incident they hang under); replies
and history entries gain `system` (written by the service itself); history gains the actions
linked and unlinked, and the incident events (opened, updated, resolved, and each affected
subscriber's outage) that the webhook worker sends from it.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

ACTIONS = ("created", "updated", "status_changed", "assigned", "replied", "noted", "deleted")
OLD_ACTIONS = (*ACTIONS, "restored")
INCIDENT_EVENTS = ("incident_opened", "incident_updated", "incident_resolved", "outage")
INCIDENT_EVENTS += ("incident_suggested",)
NEW_ACTIONS = (*OLD_ACTIONS, "linked", "unlinked", *INCIDENT_EVENTS)


def _actions(actions) -> str:
    return "action IN ({})".format(", ".join(f"'{a}'" for a in actions))


def _allow_actions(old, new) -> None:
    """Replace history's check of its actions. On SQLite the table's definition is edited in
    place, as SQLite documents for loosening or tightening a CHECK (a rebuild of the table
    would trip over the triggers on tickets that write history, and lose the column-level
    foreign keys that 0009's downgrade drops with their columns)."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        op.drop_constraint(op.f("ck_ticket_history_action"), "ticket_history", type_="check")
        op.create_check_constraint("action", "ticket_history", _actions(new))
        return
    where = "type = 'table' AND name = 'ticket_history'"
    definition = bind.exec_driver_sql(f"SELECT sql FROM sqlite_master WHERE {where}").scalar()
    if _actions(old) not in definition:
        raise RuntimeError("ticket_history's check of its actions is not the one expected")
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.exec_driver_sql(
        f"UPDATE sqlite_master SET sql = ? WHERE {where}",
        (definition.replace(_actions(old), _actions(new)),),
    )
    bind.exec_driver_sql(f"PRAGMA schema_version = {version + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")


def upgrade() -> None:
    op.create_table(
        "network_objects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("isp_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("branch_id", sa.Integer(), nullable=True),
        sa.Column("attributes", sa.JSON(), nullable=True),
        sa.Column("path", sa.String(length=512), nullable=False),
        sa.Column("depth", sa.SmallInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "kind IN ('site', 'node', 'device', 'link', 'service')",
            name=op.f("ck_network_objects_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["network_objects.id"],
            name=op.f("fk_network_objects_parent_id_network_objects"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_network_objects")),
        sa.UniqueConstraint(
            "isp_id", "kind", "external_id", name="uq_network_objects_isp_id_kind_external_id"
        ),
    )
    op.create_index(
        "ix_network_objects_isp_id_path",
        "network_objects",
        ["isp_id", "path"],
        postgresql_ops={"path": "text_pattern_ops"},
        postgresql_include=["id", "retired_at"],
    )
    op.create_index("ix_network_objects_parent_id", "network_objects", ["parent_id"])
    op.create_table(
        "subscriber_network",
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("object_id", sa.Integer(), nullable=False),
        sa.Column("isp_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["object_id"],
            ["network_objects.id"],
            name=op.f("fk_subscriber_network_object_id_network_objects"),
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_subscriber_network_subscriber_id_subscribers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("subscriber_id", "object_id", name=op.f("pk_subscriber_network")),
    )
    op.create_index(
        "ix_subscriber_network_object_id", "subscriber_network", ["object_id", "subscriber_id"]
    )
    op.create_table(
        "ticket_links",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("object_id", sa.Integer(), nullable=False),
        sa.Column("isp_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["object_id"],
            ["network_objects.id"],
            name=op.f("fk_ticket_links_object_id_network_objects"),
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_ticket_links_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ticket_id", "object_id", name=op.f("pk_ticket_links")),
    )
    op.create_index("ix_ticket_links_object_id", "ticket_links", ["object_id", "ticket_id"])
    op.create_table(
        "incidents",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("isp_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expected_end_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("planned", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("public_message", sa.Text(), nullable=False),
        sa.Column("restored_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_incidents_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ticket_id", name=op.f("pk_incidents")),
    )
    op.create_index("ix_incidents_isp_id", "incidents", ["isp_id"])
    op.create_table(
        "incident_subscribers",
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("isp_id", sa.Integer(), nullable=False),
        sa.Column("affected_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("affected_until", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["tickets.id"],
            name=op.f("fk_incident_subscribers_incident_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_incident_subscribers_subscriber_id_subscribers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "incident_id", "subscriber_id", name=op.f("pk_incident_subscribers")
        ),
    )
    op.create_index(
        "ix_incident_subscribers_subscriber_id",
        "incident_subscribers",
        ["subscriber_id", "incident_id"],
    )
    op.add_column(
        "tickets",
        sa.Column("kind", sa.String(length=16), server_default="ticket", nullable=False),
    )
    # SQLite adds a column's foreign key only with the column, in its definition.
    op.execute(
        "ALTER TABLE tickets ADD COLUMN parent_id INTEGER "
        "CONSTRAINT fk_tickets_parent_id_tickets REFERENCES tickets (id)"
    )
    for name, columns, where in (
        (
            "ix_tickets_live_scope_incidents",
            ["isp_id", "branch_id", "created_at", "id"],
            "kind = 'incident' AND deleted_at IS NULL",
        ),
        ("ix_tickets_parent_id", ["parent_id", "id"], "parent_id IS NOT NULL"),
    ):
        op.create_index(
            name,
            "tickets",
            columns,
            postgresql_where=sa.text(where),
            sqlite_where=sa.text(where),
        )
    for table in ("ticket_replies", "ticket_history"):
        op.add_column(
            table, sa.Column("system", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    _allow_actions(OLD_ACTIONS, NEW_ACTIONS)
    op.create_table(
        "isp_settings",
        sa.Column("isp_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("storm_tickets", sa.SmallInteger(), server_default="5", nullable=False),
        sa.Column("storm_minutes", sa.SmallInteger(), server_default="15", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("isp_id", name=op.f("pk_isp_settings")),
    )
    op.create_table(
        "storm_hits",
        sa.Column("object_id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("isp_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["object_id"],
            ["network_objects.id"],
            name=op.f("fk_storm_hits_object_id_network_objects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_storm_hits_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("object_id", "ticket_id", name=op.f("pk_storm_hits")),
    )
    op.create_index("ix_storm_hits_object_id_at", "storm_hits", ["object_id", "at"])
    op.create_table(
        "incident_suggestions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("isp_id", sa.Integer(), nullable=False),
        sa.Column("object_id", sa.Integer(), nullable=False),
        sa.Column("ticket_ids", sa.JSON(), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("quiet_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["tickets.id"],
            name=op.f("fk_incident_suggestions_incident_id_tickets"),
        ),
        sa.ForeignKeyConstraint(
            ["object_id"],
            ["network_objects.id"],
            name=op.f("fk_incident_suggestions_object_id_network_objects"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_suggestions")),
    )
    op.create_index(
        "ix_incident_suggestions_isp_id_status", "incident_suggestions", ["isp_id", "status", "id"]
    )
    op.create_index(
        "ix_incident_suggestions_object_id", "incident_suggestions", ["object_id", "status"]
    )


def downgrade() -> None:
    op.drop_index("ix_incident_suggestions_object_id", table_name="incident_suggestions")
    op.drop_index("ix_incident_suggestions_isp_id_status", table_name="incident_suggestions")
    op.drop_table("incident_suggestions")
    op.drop_index("ix_storm_hits_object_id_at", table_name="storm_hits")
    op.drop_table("storm_hits")
    op.drop_table("isp_settings")
    added = ", ".join(f"'{action}'" for action in NEW_ACTIONS if action not in OLD_ACTIONS)
    op.execute(f"DELETE FROM ticket_history WHERE action IN ({added})")
    _allow_actions(NEW_ACTIONS, OLD_ACTIONS)
    for table in ("ticket_history", "ticket_replies"):
        op.drop_column(table, "system")
    op.drop_index("ix_tickets_parent_id", table_name="tickets")
    op.drop_index("ix_tickets_live_scope_incidents", table_name="tickets")
    op.drop_column("tickets", "parent_id")  # and its foreign key
    op.drop_column("tickets", "kind")
    op.drop_index("ix_incident_subscribers_subscriber_id", table_name="incident_subscribers")
    op.drop_table("incident_subscribers")
    op.drop_index("ix_incidents_isp_id", table_name="incidents")
    op.drop_table("incidents")
    op.drop_index("ix_ticket_links_object_id", table_name="ticket_links")
    op.drop_table("ticket_links")
    op.drop_index("ix_subscriber_network_object_id", table_name="subscriber_network")
    op.drop_table("subscriber_network")
    op.drop_index("ix_network_objects_parent_id", table_name="network_objects")
    op.drop_index("ix_network_objects_isp_id_path", table_name="network_objects")
    op.drop_table("network_objects")
