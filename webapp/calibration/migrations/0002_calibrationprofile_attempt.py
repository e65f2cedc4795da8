# A refused calibration keeps what it detected (for the admin's picture) and advice.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("calibration", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="calibrationprofile",
            name="attempt",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text="a refused calibration: the blobs it detected and advice",
            ),
        ),
    ]
