"""
How insights hear about changes: reflections and surveys send their signals inside the
transaction that makes the change. The mark is written right there, so it commits with the
change (a rolled-back close marks nothing, a committed one is never forgotten); asking for the
refresh waits for commit, and never does the refresh inside the request (insights.queue).

A close, reopening, amendment or buyer's first answer marks its reflection, with what the
stored facts count for it until the refresh applies its delta (insights.delta). Imported
history marks its periods, which the refresh recomputes, one signal per committed batch with
every closing date of the batch; so does a buyer changing answers already counted (their old
answers are gone by the time the signal comes), and so does merging a retired reason into
another: the facts count its deals under its own key until their periods are recomputed.
"""

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from insights import delta, queue, services
from reflections.models import Answer, Reason
from reflections.signals import (
    opportunity_reopened,
    reflection_amending,
    reflection_submitted,
    reflections_imported,
)
from surveys.models import SurveyAnswer
from surveys.signals import survey_answered

CATCH_UP = (
    "Your close is saved. The reports could not be updated just now; they will catch up "
    "within a few minutes, on their own."
)


def _refresh_after_commit(reflection=None) -> None:
    def ask_for_refresh() -> None:
        if not queue.insights_refresh_queue() and reflection is not None:
            # Told to the person who closed (reflections.signals: after_commit_notes).
            reflection.after_commit_notes = [
                *getattr(reflection, "after_commit_notes", []),
                CATCH_UP,
            ]

    transaction.on_commit(ask_for_refresh, robust=True)


def _changed(reflection, counted) -> None:
    """Mark the reflection changed, or its periods when what the facts count is not known."""
    if not services.insights_mark_changed(reflection_id=reflection.pk, counted=counted):
        services.insights_mark_stale(dates=[reflection.closed_date])


def _counted(reflection_id: int, **options):
    return lambda: delta.contributions([reflection_id], **options).get(reflection_id)


def _nothing():
    return None


@receiver(reflection_amending, dispatch_uid="insights_reflection_amending")
def reflection_amending_received(sender, reflection, **kwargs):
    # What the amendment replaces is readable only now.
    services.insights_mark_changed(reflection_id=reflection.pk, counted=_counted(reflection.pk))


@receiver(reflection_submitted, dispatch_uid="insights_reflection_submitted")
def reflection_submitted_received(sender, reflection, created=False, **kwargs):
    # A new reflection is counted nowhere yet; an amended one was marked as it began.
    _changed(reflection, _nothing if created else None)
    _refresh_after_commit(reflection)


@receiver(opportunity_reopened, dispatch_uid="insights_opportunity_reopened")
def opportunity_reopened_received(sender, opportunity, reflection=None, **kwargs):
    if reflection is not None:
        # Read as it was counted: it is no longer current, and nothing else changed.
        _changed(reflection, _counted(reflection.pk, current_only=False))
        _refresh_after_commit()


@receiver(survey_answered, dispatch_uid="insights_survey_answered")
def survey_answered_received(sender, survey, **kwargs):
    # The first answers were counted nowhere; changed answers replaced the counted ones.
    first = survey.revision == 1
    _changed(survey.reflection, _counted(survey.reflection_id, buyers=False) if first else None)
    _refresh_after_commit()


@receiver(reflections_imported, dispatch_uid="insights_reflections_imported")
def reflections_imported_received(sender, dates, **kwargs):
    """An import's batch (or its switch in or out of reports) touched these closing dates."""
    days = {day for day in dates if day}
    if days:  # an empty batch changed nothing to report
        services.insights_mark_stale(dates=days)
        _refresh_after_commit()


@receiver(post_save, sender=Reason, dispatch_uid="insights_reason_merged")
def reason_saved(sender, instance, **kwargs):
    """
    A reason merged into another (reflections.services.reason_merge, or the admin) moves its
    deals to the other's key: a delta cannot take them from where the facts count them, so the
    periods where the reason (or one merged into it) was answered are recomputed instead.
    """
    if instance.merged_into_id is None:
        return
    reasons = [
        instance.pk,
        *Reason.objects.filter(merged_into=instance).values_list("pk", flat=True),
    ]
    days = set(
        Answer.objects.filter(reason__in=reasons)
        .values_list("reflection__closed_date", flat=True)
        .distinct()
    )
    days |= set(
        SurveyAnswer.objects.filter(reason__in=reasons)
        .values_list("request__reflection__closed_date", flat=True)
        .distinct()
    )
    if days:
        services.insights_mark_stale(dates=days)
        _refresh_after_commit()
