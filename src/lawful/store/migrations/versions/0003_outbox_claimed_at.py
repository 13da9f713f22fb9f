"""When a sender claimed an outbox message: a message whose sender died mid-send is taken up
again once the claim is old.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:  # SQLite alters by copying the table
        batch.add_column(sa.Column("claimed_at", sa.DateTime, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("claimed_at")
