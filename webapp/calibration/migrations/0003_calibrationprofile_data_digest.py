# Each profile keeps the SHA-256 of its data, so readers can cache the decoded JSON.

import hashlib
import json

from django.db import migrations, models


def fill_digests(apps, schema_editor):
    profiles = apps.get_model("calibration", "CalibrationProfile")
    for profile in profiles.objects.all().iterator():
        canonical = json.dumps(profile.data, sort_keys=True, separators=(",", ":"), default=str)
        profile.data_digest = hashlib.sha256(canonical.encode()).hexdigest()
        profile.save(update_fields=["data_digest"])


class Migration(migrations.Migration):

    dependencies = [
        ("calibration", "0002_calibrationprofile_attempt"),
    ]

    operations = [
        migrations.AddField(
            model_name="calibrationprofile",
            name="data_digest",
            field=models.CharField(
                blank=True,
                editable=False,
                help_text="SHA-256 of data, set on save (keys the decoded-profile cache)",
                max_length=64,
            ),
        ),
        migrations.RunPython(fill_digests, migrations.RunPython.noop),
    ]
