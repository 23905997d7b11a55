"""Seed 000's pending reply audio: deliveries and their pieces.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from conversation.models import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create both tables."""
    op.create_table(
        "deliveries",
        sa.Column("owner", sa.String(64), primary_key=True),
        sa.Column("session", sa.String(64), primary_key=True),
        sa.Column("turn", sa.String(32), nullable=False, unique=True),
        sa.Column("conversation_id", sa.String(64)),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.Column("stored", sa.Integer(), nullable=False),
        sa.Column("error_code", sa.String(64)),
        sa.Column("error_message", sa.Text()),
        sa.Column("ttl_seconds", sa.Float(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_deliveries_expires_at", "deliveries", ["expires_at"])
    op.create_table(
        "delivery_pieces",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("turn", sa.String(32), nullable=False),
        sa.Column("piece_index", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("sample_rate", sa.Integer(), nullable=False),
        sa.Column("audio", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_delivery_pieces_turn_index", "delivery_pieces", ["turn", "piece_index"], unique=True)


def downgrade() -> None:
    """Drop both tables."""
    op.drop_index("ix_delivery_pieces_turn_index", "delivery_pieces")
    op.drop_table("delivery_pieces")
    op.drop_index("ix_deliveries_expires_at", "deliveries")
    op.drop_table("deliveries")
