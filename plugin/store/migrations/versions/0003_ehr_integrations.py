"""ehr integrations: FHIR endpoints and subscription state, CDS Hooks clients and cards

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import plugin.store.models

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = plugin.store.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "fhir_endpoints",
        sa.Column("clinic_id", sa.String(length=40), nullable=False),
        sa.Column("base_url", sa.String(length=1000), nullable=False),
        sa.Column("token_env", sa.String(length=100), nullable=True),
        sa.Column("updated_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(["clinic_id"], ["clinics.id"]),
        sa.PrimaryKeyConstraint("clinic_id"),
    )
    op.create_table(
        "fhir_subscriptions",
        sa.Column("id", BigId, nullable=False),
        sa.Column("clinic_id", sa.String(length=40), nullable=False),
        sa.Column("subscription", sa.String(length=300), nullable=False),
        sa.Column("topic", sa.String(length=500), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("last_type", sa.String(length=30), nullable=False),
        sa.Column("highest_event_number", sa.BigInteger(), nullable=False),
        sa.Column("missing", sa.JSON(), nullable=False),
        sa.Column("missing_since", UTC, nullable=True),
        sa.Column("gaps_seen", sa.Integer(), nullable=False),
        sa.Column("handshake_at", UTC, nullable=True),
        sa.Column("last_seen_at", UTC, nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(["clinic_id"], ["clinics.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("clinic_id", "subscription"),
    )
    op.create_table(
        "cds_clients",
        sa.Column("id", BigId, nullable=False),
        sa.Column("clinic_id", sa.String(length=40), nullable=False),
        sa.Column("issuer", sa.String(length=500), nullable=False),
        sa.Column("jwks_url", sa.String(length=1000), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(["clinic_id"], ["clinics.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("issuer"),
    )
    with op.batch_alter_table("cds_clients", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cds_clients_clinic_id"), ["clinic_id"], unique=False)
    op.create_table(
        "cds_cards",
        sa.Column("id", BigId, nullable=False),
        sa.Column("clinic_id", sa.String(length=40), nullable=False),
        sa.Column("card_uuid", sa.String(length=36), nullable=False),
        sa.Column("suggestion_id", BigId, nullable=False),
        sa.Column("hook_instance", sa.String(length=100), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(["clinic_id"], ["clinics.id"]),
        sa.ForeignKeyConstraint(["suggestion_id"], ["suggestions.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("card_uuid"),
    )
    with op.batch_alter_table("cds_cards", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cds_cards_suggestion_id"), ["suggestion_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("cds_cards", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cds_cards_suggestion_id"))
    op.drop_table("cds_cards")
    with op.batch_alter_table("cds_clients", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cds_clients_clinic_id"))
    op.drop_table("cds_clients")
    op.drop_table("fhir_subscriptions")
    op.drop_table("fhir_endpoints")
