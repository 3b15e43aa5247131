from django.db.models.signals import m2m_changed
from django.dispatch import receiver

from accounts.models import Team


@receiver(m2m_changed, sender=Team.managers.through)
def forget_managed_teams(sender, instance, **kwargs):
    """A manager's teams changed: drop the per-object cache of accounts.access."""
    if hasattr(instance, "_managed_team_ids"):
        del instance._managed_team_ids
