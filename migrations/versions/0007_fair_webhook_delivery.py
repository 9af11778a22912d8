"""fair webhook delivery: deliveries taken under a lease, endpoints in turn and within limits,
each endpoint with a circuit; redeliveries marked so that they can be limited

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")
REDELIVERY = sa.text("redelivery")


def upgrade() -> None:
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.add_column(sa.Column("failures", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("succeeded_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("paused_until", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.add_column(
            sa.Column("redelivery", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True))
        batch.drop_index("ix_webhook_deliveries_due")
        batch.create_index(
            "ix_webhook_deliveries_endpoint_due",
            ["endpoint_id", "next_attempt_at"],
            postgresql_where=PENDING,
            sqlite_where=PENDING,
        )
        batch.create_index(
            "ix_webhook_deliveries_redelivered",
            ["endpoint_id", "created_at"],
            postgresql_where=REDELIVERY,
            sqlite_where=REDELIVERY,
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_index("ix_webhook_deliveries_redelivered")
        batch.drop_index("ix_webhook_deliveries_endpoint_due")
        batch.create_index(
            "ix_webhook_deliveries_due",
            ["next_attempt_at"],
            postgresql_where=PENDING,
            sqlite_where=PENDING,
        )
        batch.drop_column("leased_until")
        batch.drop_column("redelivery")
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.drop_column("paused_until")
        batch.drop_column("succeeded_at")
        batch.drop_column("failures")
