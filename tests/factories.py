"""All factory_boy factories, in one place."""

import factory
from django.conf import settings

from accounts.models import Role, Team, User


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Team {n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"person{n}@example.com")
    full_name = factory.Faker("name")
    role = Role.REP
    team = factory.SubFactory(TeamFactory)
    password = factory.PostGenerationMethodCall("set_password", settings.DEBRIEF_DEMO_PASSWORD)

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save(update_fields=["password"])


class ManagerFactory(UserFactory):
    role = Role.MANAGER
    team = None

    @factory.post_generation
    def manages(obj, create, extracted, **kwargs):
        if create and extracted:
            obj.managed_teams.add(*extracted)


# --- customers ---------------------------------------------------------------------------------
import datetime  # noqa: E402
from decimal import Decimal  # noqa: E402

from django.utils import timezone  # noqa: E402

from customers.models import Company, Contact, Region, Segment, SizeBand  # noqa: E402
from opportunities.models import (  # noqa: E402
    Competitor,
    Opportunity,
    Product,
    ProductLine,
    Stage,
    StageChange,
)


class CompanyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Company

    name = factory.Sequence(lambda n: f"Company {n} Ltd")
    domain = factory.Sequence(lambda n: f"company{n}.example")
    segment = Segment.SOFTWARE
    size_band = SizeBand.MID
    region = Region.UK


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact

    company = factory.SubFactory(CompanyFactory)
    full_name = factory.Faker("name")
    title = "Head of Operations"
    email = factory.Sequence(lambda n: f"contact{n}@customer.example")
    phone = factory.Sequence(lambda n: f"+44 20 7946 {n % 10000:04d}")


# --- opportunities -----------------------------------------------------------------------------
class ProductLineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProductLine
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Line {n}")


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    line = factory.SubFactory(ProductLineFactory)
    name = factory.Sequence(lambda n: f"Product {n}")


class CompetitorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Competitor
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Competitor {n}")


class OpportunityFactory(factory.django.DjangoModelFactory):
    """A deal whose contact works at its company. Closed stages get a closed date."""

    class Meta:
        model = Opportunity

    company = factory.SubFactory(CompanyFactory)
    contact = factory.SubFactory(ContactFactory, company=factory.SelfAttribute("..company"))
    product = factory.SubFactory(ProductFactory)
    owner = factory.SubFactory(UserFactory)
    title = factory.Sequence(lambda n: f"Deal {n}")
    amount = Decimal("12000.00")
    stage = Stage.PROPOSAL
    expected_close_date = factory.LazyFunction(
        lambda: timezone.localdate() + datetime.timedelta(days=30)
    )
    closed_date = factory.LazyAttribute(
        lambda o: (
            timezone.localdate() if o.stage in (Stage.WON, Stage.LOST, Stage.NO_DECISION) else None
        )
    )


class StageChangeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StageChange

    opportunity = factory.SubFactory(OpportunityFactory)
    from_stage = Stage.PROSPECTING
    to_stage = Stage.QUALIFICATION
    changed_by = factory.SelfAttribute("opportunity.owner")


# --- imported history --------------------------------------------------------------------------
def imported_close(
    *,
    importer: User,
    outcome: str,
    closed_date: datetime.date,
    reason: str | None = None,
    in_reports: bool = True,
    cycle_days: int = 30,
    **deal,
):
    """
    A deal closed in another CRM and imported, written as imports.services writes one: the
    deal created closed, one StageChange, a Reflection with origin "imported" authored by the
    importer, and the main-reason answer (`reason` is a Reason label of the outcome; None:
    "Unknown / not sure"). No signal is sent. `deal` goes to OpportunityFactory (owner,
    company, product, amount, ...). Returns the reflection.
    """
    from reflections.models import Answer, Origin, QuestionKind, Reason, Reflection
    from reflections.selectors import prompt_set_for

    created = timezone.make_aware(
        datetime.datetime.combine(
            closed_date - datetime.timedelta(days=cycle_days), datetime.time(12)
        )
    )
    deal.setdefault("contact", None)
    opportunity = OpportunityFactory(
        stage=Stage(outcome),
        closed_date=closed_date,
        expected_close_date=closed_date,
        created_at=created,
        **deal,
    )
    StageChange.objects.create(
        opportunity=opportunity, from_stage="", to_stage=outcome, changed_by=importer
    )
    prompt_set = prompt_set_for(outcome, opportunity.product.line_id)
    reflection = Reflection.objects.create(
        opportunity=opportunity,
        author=importer,
        outcome=outcome,
        prompt_set=prompt_set,
        closed_date=closed_date,
        origin=Origin.IMPORTED,
        in_reports=in_reports,
    )
    Answer.objects.create(
        reflection=reflection,
        question=prompt_set.questions.get(kind=QuestionKind.PRIMARY_REASON),
        reason=None if reason is None else Reason.objects.get(outcome=outcome, label=reason),
        is_unknown=reason is None,
    )
    return reflection
