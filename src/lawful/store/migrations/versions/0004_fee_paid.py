"""When a charged fee was paid: until then the request is not executed (Art. 12(5)(a)).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("request") as batch:  # SQLite alters by copying the table
        batch.add_column(sa.Column("fee_paid_at", sa.DateTime, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("request") as batch:
        batch.drop_column("fee_paid_at")
