"""Keeping the cached product catalogue (selectors.catalogue) in step with the admin's edits."""

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from opportunities import selectors
from opportunities.models import Product, ProductLine


@receiver(post_save, sender=Product, dispatch_uid="catalogue_product_saved")
@receiver(post_delete, sender=Product, dispatch_uid="catalogue_product_deleted")
@receiver(post_save, sender=ProductLine, dispatch_uid="catalogue_line_saved")
@receiver(post_delete, sender=ProductLine, dispatch_uid="catalogue_line_deleted")
def catalogue_changed(sender, **kwargs):
    # Now, and again after commit: a page drawn in between must not re-cache the old list.
    selectors.forget_catalogue()
    transaction.on_commit(selectors.forget_catalogue)
