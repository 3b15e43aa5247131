"""
Demo do-not-contact entries for seed_demo: the contacts the customers step picked as having
asked not to be contacted (about 3%) get a do-not-contact suppression each, which sets their
flag. Runs right after the customers step, before any deal is made, as the picking did.
"""

from accounts.demo import DemoContext
from accounts.models import Role, User
from customers.models import Contact
from suppressions import services

BATCH_SIZE = 5000


def seed(ctx: DemoContext) -> None:
    ids = ctx.data.pop("asked_not_to_be_contacted", [])
    if not ids:
        return
    admin = User.objects.filter(role=Role.ADMIN).order_by("id").first()
    for start in range(0, len(ids), BATCH_SIZE):
        contacts = list(
            Contact.objects.filter(pk__in=ids[start : start + BATCH_SIZE]).only("id", "company_id")
        )
        services.do_not_contact_add_many(
            actor=admin, contacts=contacts, note="Asked not to be contacted."
        )
    ctx.log(f"  do-not-contact: {len(ids)}")
