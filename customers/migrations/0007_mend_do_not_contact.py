"""
One source of truth for do-not-contact: the active do-not-contact suppression. A contact
flagged without one (earlier demo data, direct edits) gets one, so that every check refuses
them; a contact with an active one but no flag gets the flag.
"""

from django.db import migrations
from django.db.models import Q
from django.utils import timezone

NOTE = "Marked do-not-contact before suppressions recorded it."


def mend(apps, schema_editor):
    Contact = apps.get_model("customers", "Contact")
    Suppression = apps.get_model("customers", "Suppression")
    today = timezone.localdate()
    active = Suppression.objects.filter(
        Q(until__isnull=True) | Q(until__gte=today),
        reason="do_not_contact",
        lifted_at__isnull=True,
        starts_on__lte=today,
        contact__isnull=False,
    )
    covered = set(active.values_list("contact_id", flat=True))
    flagged = Contact.objects.filter(do_not_contact=True).exclude(pk__in=covered)
    Suppression.objects.bulk_create(
        Suppression(
            company_id=contact.company_id,
            contact_id=contact.pk,
            scope="all",
            reason="do_not_contact",
            note=NOTE,
            starts_on=today,
            until=None,
        )
        for contact in flagged.only("pk", "company_id").iterator()
    )
    Contact.objects.filter(pk__in=covered, do_not_contact=False).update(do_not_contact=True)


class Migration(migrations.Migration):
    dependencies = [("customers", "0006_company_created_by")]

    operations = [migrations.RunPython(mend, migrations.RunPython.noop)]
