"""PostgreSQL refuses UPDATE and DELETE on the audit table (other databases: the ORM refuses).

The trigger is row-level: TRUNCATE (table owner only) is not covered; the site's database role
should not own the table in production (see README, Audit).
"""

from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION orthofuse_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only: % refused on core_auditevent row %',
        TG_OP, OLD.id USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""
TRIGGER = """
CREATE TRIGGER orthofuse_audit_append_only
BEFORE UPDATE OR DELETE ON core_auditevent
FOR EACH ROW EXECUTE FUNCTION orthofuse_audit_append_only();
"""
DROP = """
DROP TRIGGER IF EXISTS orthofuse_audit_append_only ON core_auditevent;
DROP FUNCTION IF EXISTS orthofuse_audit_append_only();
"""


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTION, params=None)  # None: its % signs are not placeholders
        schema_editor.execute(TRIGGER, params=None)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):

    dependencies = [("core", "0003_audit_hash_chain")]

    operations = [migrations.RunPython(create_trigger, drop_trigger)]
