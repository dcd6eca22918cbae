"""slack: the therapist's Slack time zone is cached with when it was fetched

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import plugin.store.models  # noqa: F401

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("therapists", schema=None) as batch_op:
        batch_op.add_column(sa.Column("slack_tz_fetched_at", plugin.store.models.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("therapists", schema=None) as batch_op:
        batch_op.drop_column("slack_tz_fetched_at")
