"""
How long the refresh after one close takes, by period (as before insights.delta: the close's
month and quarter, and the ones after them, read again from their reflections) and by delta.
Not a test: run it against a seeded database, e.g.

    export DEBUG=true DATABASE_URL=sqlite:////tmp/delta.sqlite3
    .venv/bin/python manage.py migrate && .venv/bin/python manage.py seed_demo
    .venv/bin/python -m bench.delta_refresh [--closes 7]

Each close goes through reflections.services.opportunity_close and is rolled back with its
refresh, so the database is left as it was. Medians on the 2-CPU development machine (Dec
2026), one lost close today, its refresh by period then by delta:

    SQLite, seed_demo (1,798 reflections)             171 ms -> 74 ms
    SQLite, seed_demo --scale large (59,813)          636 ms -> 87 ms
    PostgreSQL, seed_demo --scale large (59,813)      571 ms -> 139 ms

By period the time grows with the quarter's reflections; by delta it does not (the same
reports are recomputed from their stored counts whatever the data size).
"""

import argparse
import os
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--closes", type=int, default=7, help="closes timed each way")
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm_site.settings")
    import django

    django.setup()
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from insights import services
    from insights.models import PendingReflection
    from opportunities.models import OPEN_STAGES, Opportunity
    from reflections import selectors
    from reflections.models import Outcome, QuestionKind, Reason, Reflection
    from reflections.services import AnswerInput, opportunity_close

    if not Reflection.objects.exists():
        raise SystemExit("No reflections: seed the database first (manage.py seed_demo).")
    services.insights_rebuild_now(detail="Before timing the refresh")
    reason = Reason.objects.filter(outcome=Outcome.LOST, active=True).order_by("order").first()
    deals = list(
        Opportunity.objects.filter(stage__in=OPEN_STAGES)
        .select_related("product", "owner")
        .order_by("pk")[: args.closes]
    )
    if not deals:
        raise SystemExit("No open deals to close.")

    def close(deal) -> Reflection:
        prompt_set = selectors.prompt_set_for(Outcome.LOST, deal.product.line_id)
        answers = []
        for question in prompt_set.questions.all():
            if question.kind == QuestionKind.PRIMARY_REASON:
                answers.append(
                    AnswerInput(question=question, reason=reason, reason_source="customer")
                )
            elif question.required and question.kind == QuestionKind.SHORT_TEXT:
                answers.append(AnswerInput(question=question, text="Timing the refresh."))
            elif question.required:
                raise SystemExit(f"Cannot answer the required question {question.label!r}.")
        return opportunity_close(
            actor=deal.owner,
            opportunity=deal,
            outcome=Outcome.LOST,
            prompt_set=prompt_set,
            answers=answers,
        )

    def timed(deal, *, by_period: bool) -> tuple[float, int]:
        with transaction.atomic():
            reflection = close(deal)
            if by_period:  # what the refresh did before: the close's periods read again
                PendingReflection.objects.filter(pk=reflection.pk).delete()
                services.insights_mark_stale(dates=[reflection.closed_date])
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                services.insights_refresh_pending()
                elapsed = time.perf_counter() - started
            transaction.set_rollback(True)
        return elapsed * 1000, len(queries)

    reflections = Reflection.objects.filter(current=True, in_reports=True).count()
    print(f"{connection.vendor}: {reflections} counted reflections, {len(deals)} closes each way")
    for label, by_period in (("by period (before)", True), ("by delta (after)", False)):
        runs = [timed(deal, by_period=by_period) for deal in deals]
        times = sorted(ms for ms, _ in runs)
        print(
            f"  {label:<20} median {statistics.median(times):7.1f} ms, "
            f"max {times[-1]:7.1f} ms, {runs[0][1]} queries"
        )


if __name__ == "__main__":
    main()
