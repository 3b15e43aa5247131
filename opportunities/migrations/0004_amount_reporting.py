from django.conf import settings
from django.db import migrations, models


def fill(apps, schema_editor):
    """Every deal's amount in the reporting currency at the configured rates (one UPDATE)."""
    from opportunities.currency import reporting_expression

    Opportunity = apps.get_model("opportunities", "Opportunity")
    Opportunity.objects.update(amount_reporting=reporting_expression())


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0007_mend_do_not_contact"),
        ("opportunities", "0003_search_trigram"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="opportunity",
            name="opp_amount_idx",
        ),
        migrations.AddField(
            model_name="opportunity",
            name="amount_reporting",
            field=models.DecimalField(decimal_places=2, default=0, editable=False, max_digits=16),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop, elidable=True),
        migrations.AddIndex(
            model_name="opportunity",
            index=models.Index(fields=["amount_reporting", "id"], name="opp_amount_reporting_idx"),
        ),
    ]
