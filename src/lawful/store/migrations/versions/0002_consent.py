"""The consent ledger: events (append-only), current state per person and purpose, and the
do-not-contact list.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "consent_event",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("client_event_id", sa.String(64), nullable=True, unique=True),
        sa.Column("subject_kind", sa.String(16), nullable=False),
        sa.Column("subject_hash", sa.String(64), nullable=False),
        sa.Column("subject_enc", sa.LargeBinary, nullable=False),
        sa.Column("audit_id", sa.String(64), nullable=True),
        sa.Column("purpose", sa.String(100), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("text_hash", sa.String(64), nullable=True),
        sa.Column("language", sa.String(16), nullable=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("site", sa.String(200), nullable=True),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("ip_hash", sa.String(64), nullable=True),
        sa.Column("user_agent", sa.String(300), nullable=True),
        sa.Column("gpc", sa.Boolean, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
    )
    op.create_index("ix_consent_event_subject", "consent_event",
                    ["subject_hash", "purpose", "id"])
    op.create_index("ix_consent_event_site", "consent_event", ["site"])
    op.create_table(
        "consent_state",
        sa.Column("subject_hash", sa.String(64), primary_key=True),
        sa.Column("purpose", sa.String(100), primary_key=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("event_id", BigId, nullable=False),
    )
    op.create_table(
        "do_not_contact",
        sa.Column("hash", sa.String(64), primary_key=True),
        sa.Column("scope", sa.String(100), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("added_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    for table in ("do_not_contact", "consent_state", "consent_event"):
        op.drop_table(table)
