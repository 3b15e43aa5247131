# The call-list jobs (suppressions/jobs.py), written by hand from makemigrations' output: only
# these models' operations (the change feed's are 0002's).

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_api_token"),
        ("suppressions", "0002_change_feed"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="CallListJob",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "file_name",
                    models.CharField(help_text="The uploaded file's own name.", max_length=255),
                ),
                (
                    "path",
                    models.CharField(blank=True, help_text="The uploaded file.", max_length=255),
                ),
                ("sha256", models.CharField(max_length=64)),
                ("size", models.PositiveBigIntegerField(help_text="Bytes uploaded.")),
                ("encoding", models.CharField(max_length=16)),
                (
                    "layout",
                    models.JSONField(
                        help_text="Header, known columns and encodings, as validated."
                    ),
                ),
                ("rows", models.PositiveIntegerField()),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("queued", "Waiting to start"),
                            ("running", "Checking"),
                            ("done", "Checked"),
                            ("failed", "Stopped: some parts failed"),
                            ("cancelled", "Cancelled"),
                            ("expired", "Expired: the checked file was deleted"),
                        ],
                        default="queued",
                        max_length=10,
                    ),
                ),
                (
                    "counts",
                    models.JSONField(
                        blank=True,
                        default=dict,
                        help_text="What the check found (rows, by reason, problems).",
                    ),
                ),
                ("error", models.CharField(blank=True, max_length=500)),
                ("result_path", models.CharField(blank=True, max_length=255)),
                ("result_size", models.PositiveBigIntegerField(default=0)),
                (
                    "created_at",
                    models.DateTimeField(default=django.utils.timezone.now, editable=False),
                ),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                (
                    "expires_at",
                    models.DateTimeField(
                        help_text="When its files are deleted: DEBRIEF_CALLLIST_KEEP_HOURS after it was uploaded, and again after it was checked."
                    ),
                ),
                (
                    "api_token",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="call_list_jobs",
                        to="accounts.apitoken",
                    ),
                ),
                (
                    "owner",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="call_list_jobs",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "verbose_name": "call-list job",
                "ordering": ["-created_at", "-id"],
            },
        ),
        migrations.CreateModel(
            name="CallListChunk",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("index", models.PositiveIntegerField()),
                (
                    "start",
                    models.PositiveBigIntegerField(help_text="Byte offset of its first record."),
                ),
                (
                    "end",
                    models.PositiveBigIntegerField(help_text="Byte offset after its last record."),
                ),
                (
                    "first_row",
                    models.PositiveIntegerField(help_text="Row number of its first record."),
                ),
                ("rows", models.PositiveIntegerField()),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("queued", "Waiting"),
                            ("running", "Checking"),
                            ("done", "Checked"),
                            ("failed", "Failed"),
                        ],
                        default="queued",
                        max_length=10,
                    ),
                ),
                ("attempts", models.PositiveSmallIntegerField(default=0)),
                ("rows_done", models.PositiveIntegerField(default=0)),
                ("counts", models.JSONField(blank=True, default=dict)),
                ("error", models.CharField(blank=True, max_length=500)),
                ("part_path", models.CharField(blank=True, max_length=255)),
                ("heartbeat_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                (
                    "job",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="chunks",
                        to="suppressions.calllistjob",
                    ),
                ),
            ],
            options={
                "ordering": ["job", "index"],
            },
        ),
        migrations.AddIndex(
            model_name="calllistjob",
            index=models.Index(fields=["owner", "-created_at"], name="calllist_job_owner_idx"),
        ),
        migrations.AddIndex(
            model_name="calllistjob",
            index=models.Index(fields=["status", "expires_at"], name="calllist_job_expiry_idx"),
        ),
        migrations.AddConstraint(
            model_name="calllistjob",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("api_token__isnull", True), ("owner__isnull", False)),
                    models.Q(("api_token__isnull", False), ("owner__isnull", True)),
                    _connector="OR",
                ),
                name="calllist_job_one_owner",
            ),
        ),
        migrations.AddConstraint(
            model_name="calllistchunk",
            constraint=models.UniqueConstraint(
                models.F("job"), models.F("index"), name="calllist_chunk_once"
            ),
        ),
    ]
