"""audit entries: who changed a user, a subscriber or a webhook, and every sign-in event

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("isp_id", sa.Integer(), nullable=True),
        sa.Column("actor_type", sa.String(length=8), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor_name", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("object_type", sa.String(length=32), nullable=False),
        sa.Column("object_id", sa.Integer(), nullable=True),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("changes", sa.JSON(), nullable=True),
        sa.CheckConstraint(
            "actor_type IN ('user', 'key', 'system')", name=op.f("ck_audit_entries_actor_type")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_entries")),
    )
    op.create_index("ix_audit_entries_isp_id_id", "audit_entries", ["isp_id", "id"])
    op.create_index(op.f("ix_audit_entries_at"), "audit_entries", ["at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_audit_entries_at"), table_name="audit_entries")
    op.drop_index("ix_audit_entries_isp_id_id", table_name="audit_entries")
    op.drop_table("audit_entries")
