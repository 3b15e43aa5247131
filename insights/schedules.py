"""
Every periodic task of Debrief, declared in one place and installed into
django-celery-beat (after each migrate) so that administrators see and edit them in the Django
admin under "Periodic tasks". Installing never overwrites an edited schedule: a task that
exists by name is left as the admin set it.
"""

import logging
from dataclasses import dataclass

from django.conf import settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Schedule:
    name: str
    task: str
    minute: str
    hour: str = "*"
    day_of_week: str = "*"
    description: str = ""


SCHEDULES = [
    # Refreshes after closes only recompute the periods they touched; the nightly rebuild
    # also picks up what they cannot see (renamed teams, merged reasons, moved reps, changed
    # currency rates or minimum slice size) and drops facts of periods emptied by reopenings.
    Schedule(
        name="Insights: nightly rebuild",
        task="insights.rebuild",
        minute="15",
        hour="2",
        description="Recompute every report from the reflections (02:15 every night).",
    ),
    # Managers hear about meaningful shifts in their teams without opening the dashboard;
    # Monday morning so that the week starts with them.
    Schedule(
        name="Insights: weekly digest",
        task="insights.weekly_digest",
        minute="0",
        hour="7",
        day_of_week="1",
        description="E-mail each manager the week's meaningful shifts (Mondays 07:00).",
    ),
    # A refresh can be lost (broker down at enqueue time, worker killed): the sweep queues one
    # for periods still marked stale and requeues runs stuck in the queue, so reports catch
    # up within minutes rather than at night.
    Schedule(
        name="Insights: sweep pending refreshes",
        task="insights.sweep",
        minute="*/5",
        description="Safety net for refreshes after closes (every 5 minutes).",
    ),
    # An uploaded export holds customers' names and e-mails: it is kept only while its import
    # may still go on. Named by task only, so that insights imports nothing of imports.
    Schedule(
        name="Imports: expire waiting uploads",
        task="imports.expire_uploads",
        minute="40",
        hour="3",
        description="Cancel history imports left waiting for DEBRIEF_IMPORT_KEEP_DAYS days "
        "and delete their files (03:40 every night).",
    ),
    # Receivers of the suppression feed and webhooks hear of an end on the day it passes.
    Schedule(
        name="Suppressions: report ended suppressions",
        task="suppressions.record_ended",
        minute="5",
        hour="0",
        description="Report suppressions whose last day passed; resend lost webhook "
        "deliveries (00:05 every night).",
    ),
    # A checked call list holds customers' names and numbers: deleted once its keep time is
    # over; chunks whose worker died are failed so that their job offers a retry.
    Schedule(
        name="Call lists: expire checked files",
        task="suppressions.calllist_sweep",
        minute="*/15",
        description="Delete call-list files older than DEBRIEF_CALLLIST_KEEP_HOURS and fail "
        "chunks whose worker stopped (every 15 minutes).",
    ),
]


def install(**kwargs) -> int:
    """Create the periodic tasks that do not exist yet. Returns how many were created."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    created = 0
    for schedule in SCHEDULES:
        if PeriodicTask.objects.filter(name=schedule.name).exists():
            continue
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=schedule.minute,
            hour=schedule.hour,
            day_of_week=schedule.day_of_week,
            day_of_month="*",
            month_of_year="*",
            timezone=settings.TIME_ZONE,
        )
        PeriodicTask.objects.create(
            name=schedule.name,
            task=schedule.task,
            crontab=crontab,
            description=schedule.description,
        )
        created += 1
    if created:
        logger.info("Installed %s insights schedule(s) into django-celery-beat", created)
    return created
