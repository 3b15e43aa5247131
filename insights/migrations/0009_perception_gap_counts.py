from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("insights", "0008_delta_refresh"),
    ]

    operations = [
        migrations.CreateModel(
            name="GapCount",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "period_kind",
                    models.CharField(
                        choices=[("month", "Month"), ("quarter", "Quarter")], max_length=8
                    ),
                ),
                ("period_start", models.DateField()),
                (
                    "scope_kind",
                    models.CharField(
                        choices=[
                            ("org", "Organisation"),
                            ("team", "Team"),
                            ("product_line", "Product line"),
                            ("segment", "Customer segment"),
                        ],
                        max_length=12,
                    ),
                ),
                (
                    "scope_key",
                    models.CharField(
                        blank=True, help_text="Empty: the organisation.", max_length=40
                    ),
                ),
                (
                    "outcome",
                    models.CharField(
                        choices=[
                            ("won", "Won"),
                            ("lost", "Lost"),
                            ("no_decision", "No decision"),
                        ],
                        max_length=12,
                    ),
                ),
                (
                    "rep_key",
                    models.BigIntegerField(help_text="The rep's main reason (id after merges)."),
                ),
                ("rep_source", models.CharField(blank=True, max_length=10)),
                (
                    "buyer_key",
                    models.BigIntegerField(help_text="The buyer's main reason (id after merges)."),
                ),
                ("deals", models.PositiveIntegerField(default=0)),
            ],
            options={
                "ordering": ["period_kind", "period_start", "scope_kind", "scope_key"],
                "indexes": [
                    models.Index(fields=["period_kind", "period_start"], name="gapcount_period_idx")
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=(
                            "period_kind",
                            "scope_kind",
                            "scope_key",
                            "period_start",
                            "outcome",
                            "rep_key",
                            "rep_source",
                            "buyer_key",
                        ),
                        name="gapcount_unique_cell",
                    )
                ],
            },
        ),
    ]
