"""
The template's "ask on close" rule hears about closes from reflections. It asks after the
close has committed, in a transaction of its own, so that a refusal or a fault in asking can
never undo or delay the close.
"""

from django.db import transaction
from django.dispatch import receiver

from reflections.signals import reflection_submitted
from surveys import services


@receiver(reflection_submitted, dispatch_uid="surveys_ask_on_close")
def reflection_submitted_received(sender, reflection, created=False, **kwargs):
    if created:
        pk = reflection.pk
        transaction.on_commit(lambda: services.request_on_close(reflection_id=pk), robust=True)
