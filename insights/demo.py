"""Demo step for seed_demo: build the reports, so the embedded default opens on real insights."""

from accounts.demo import DemoContext
from insights import services
from reflections.models import Reflection


def seed(ctx: DemoContext) -> None:
    if not Reflection.objects.filter(current=True).exists():
        ctx.log("  insights: no reflections yet, so no reports to build")
        return
    run = services.insights_rebuild_now(detail="Demo data")
    ctx.log(f"  insights: {run.facts_written} report facts built (run #{run.pk})")
