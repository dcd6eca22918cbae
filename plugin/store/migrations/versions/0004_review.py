"""review: indexes for filtered pages of the suggestion log; private suggestions; the access log made append-only

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import plugin.store.models  # noqa: F401

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# (name, columns): keyset pages on (created_at, id) within each filter the review offers.
INDEXES = (
    ("ix_suggestions_clinic_rule_created", ["clinic_id", "rule_id", "created_at", "id"]),
    ("ix_suggestions_clinic_kind_created", ["clinic_id", "kind", "created_at", "id"]),
    ("ix_suggestions_clinic_status_created", ["clinic_id", "status", "created_at", "id"]),
    ("ix_suggestions_therapist_created_id", ["therapist_id", "created_at", "id"]),
)

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION tend_access_log_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'access_log is append-only';
END;
$$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    with op.batch_alter_table("suggestions", schema=None) as batch_op:
        for name, columns in INDEXES:
            batch_op.create_index(name, columns, unique=False)
        # Decided on the therapist's own message to Tend: private to that therapist.
        batch_op.add_column(sa.Column("private", sa.Boolean(), server_default=sa.false(), nullable=False))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(
            "CREATE TRIGGER access_log_append_only BEFORE UPDATE OR DELETE ON access_log "
            "FOR EACH ROW EXECUTE FUNCTION tend_access_log_append_only()"
        )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER access_log_no_{action.lower()} BEFORE {action} ON access_log "
                "BEGIN SELECT RAISE(ABORT, 'access_log is append-only'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS access_log_append_only ON access_log")
        op.execute("DROP FUNCTION IF EXISTS tend_access_log_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS access_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS access_log_no_delete")
    with op.batch_alter_table("suggestions", schema=None) as batch_op:
        batch_op.drop_column("private")
        for name, _ in reversed(INDEXES):
            batch_op.drop_index(name)
