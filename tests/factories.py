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
