"""Two admins saving the same text's meaning at once: the second save updates, never a 500."""

from django.db import IntegrityError
from django.db.models import QuerySet

from imports import services
from imports.models import MappingAction, MappingKind, ValueMapping
from reflections.models import Outcome, Reason

from .conftest import create, salesforce_csv, sf_row


def test_a_mapping_created_meanwhile_by_another_admin_is_updated(world, teammate, monkeypatch):
    history_import = create(world, salesforce_csv([sf_row(1)]))
    price = Reason.objects.get(outcome=Outcome.LOST, label="Price")
    real = QuerySet.update_or_create
    calls = []

    def raced(self, *args, **kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            # The other admin's insert lands between this save's read and its insert.
            ValueMapping.objects.create(
                kind=MappingKind.REASON,
                outcome=Outcome.LOST,
                text="too dear",
                action=MappingAction.UNKNOWN,
                updated_by=teammate,
            )
            raise IntegrityError("UNIQUE constraint failed: mapping_one_per_text")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(QuerySet, "update_or_create", raced)
    saved = services.history_import_save_mappings(
        actor=world,
        history_import=history_import,
        decisions=[
            services.Decision("reason", Outcome.LOST, "too dear", MappingAction.MAP, price.pk)
        ],
    )

    assert saved == 1
    assert len(calls) == 2
    mapping = ValueMapping.objects.get(text="too dear")
    assert (mapping.action, mapping.reason, mapping.updated_by) == (
        MappingAction.MAP,
        price,
        world,
    )
