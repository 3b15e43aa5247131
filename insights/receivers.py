"""
How insights hear about closes: reflections sends its signals inside the close transaction.
The stale mark is written right there, so it commits with the close (a rolled-back close
marks nothing, a committed one is never forgotten); asking for the refresh waits for commit,
and never does the refresh inside the request (insights.queue). Imported history is heard the
same way, one signal per committed batch with every closing date of the batch.
"""

from django.db import transaction
from django.dispatch import receiver

from insights import queue, services
from reflections.signals import opportunity_reopened, reflection_submitted, reflections_imported
from surveys.signals import survey_answered

CATCH_UP = (
    "Your close is saved. The reports could not be updated just now; they will catch up "
    "within a few minutes, on their own."
)


def _after_commit(days, reflection=None) -> None:
    services.insights_mark_stale(dates=days)

    def ask_for_refresh() -> None:
        if not queue.insights_refresh_queue() and reflection is not None:
            # Told to the person who closed (reflections.signals: after_commit_notes).
            reflection.after_commit_notes = [
                *getattr(reflection, "after_commit_notes", []),
                CATCH_UP,
            ]

    transaction.on_commit(ask_for_refresh, robust=True)


@receiver(reflection_submitted, dispatch_uid="insights_reflection_submitted")
def reflection_submitted_received(sender, reflection, **kwargs):
    _after_commit([reflection.closed_date], reflection)


@receiver(opportunity_reopened, dispatch_uid="insights_opportunity_reopened")
def opportunity_reopened_received(sender, opportunity, reflection=None, **kwargs):
    if reflection is not None:
        _after_commit([reflection.closed_date])


@receiver(survey_answered, dispatch_uid="insights_survey_answered")
def survey_answered_received(sender, survey, **kwargs):
    _after_commit([survey.reflection.closed_date])


@receiver(reflections_imported, dispatch_uid="insights_reflections_imported")
def reflections_imported_received(sender, dates, **kwargs):
    """An import's batch (or its switch in or out of reports) touched these closing dates."""
    days = {day for day in dates if day}
    if days:  # an empty batch changed nothing to report
        _after_commit(days)
