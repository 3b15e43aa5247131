"""The default suppression rules; admins edit them in the Django admin."""

from django.db import migrations

RULES = [
    ("Lost: leave the contact alone on that product for 90 days", "lost", "product", "contact", 90),
    (
        "Won: no more pitches of that product line to the company for 180 days",
        "won",
        "product_line",
        "company",
        180,
    ),
    (
        "No decision: give the contact 30 days on that product",
        "no_decision",
        "product",
        "contact",
        30,
    ),
]


def create_rules(apps, schema_editor):
    SuppressionRule = apps.get_model("customers", "SuppressionRule")
    if SuppressionRule.objects.exists():
        return
    for name, outcome, scope, target, days in RULES:
        SuppressionRule.objects.create(
            name=name, trigger_outcome=outcome, scope=scope, target=target, days=days
        )


class Migration(migrations.Migration):
    dependencies = [("customers", "0002_suppressionrule_suppression_suppressionoverride_and_more")]

    operations = [migrations.RunPython(create_rules, migrations.RunPython.noop)]
