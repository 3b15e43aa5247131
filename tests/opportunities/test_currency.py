"""Amounts in the reporting currency: kept on every save, sorted and filtered by, repriced."""

import re
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.urls import reverse

from opportunities import services
from opportunities.currency import reprice, to_reporting
from opportunities.models import Currency, Opportunity
from tests.factories import OpportunityFactory

pytestmark = pytest.mark.django_db
PIPELINE = reverse("opportunities:pipeline")


@pytest.fixture(autouse=True)
def rates(settings):
    settings.DEBRIEF_REPORTING_CURRENCY = "GBP"
    settings.DEBRIEF_CURRENCY_RATES = {"GBP": "1", "EUR": "0.85", "USD": "0.79"}


def ids_shown(response) -> list[int]:
    return [int(i) for i in re.findall(r'<td><a href="/opportunities/(\d+)/">', response.text)]


def test_sorting_by_amount_goes_by_worth_not_by_the_number(rep_client, rep):
    gbp_2400 = OpportunityFactory(owner=rep, amount=Decimal("2400"), currency=Currency.GBP)
    eur_2600 = OpportunityFactory(owner=rep, amount=Decimal("2600"), currency=Currency.EUR)
    gbp_2700 = OpportunityFactory(owner=rep, amount=Decimal("2700"), currency=Currency.GBP)
    # EUR 2,600 is GBP 2,210: the smallest of the three.
    response = rep_client.get(PIPELINE, {"sort": "amount"})
    assert ids_shown(response) == [eur_2600.pk, gbp_2400.pk, gbp_2700.pk]
    assert ids_shown(rep_client.get(PIPELINE, {"sort": "-amount"})) == [
        gbp_2700.pk,
        gbp_2400.pk,
        eur_2600.pk,
    ]
    # The worth is shown under the amount as entered, where the currencies differ.
    assert "≈ GBP 2,210" in response.text
    assert "sorted by amount in GBP" in response.text


def test_amount_filters_go_by_worth_too(rep_client, rep):
    OpportunityFactory(owner=rep, amount=Decimal("2600"), currency=Currency.EUR)  # GBP 2,210
    kept = OpportunityFactory(owner=rep, amount=Decimal("2400"), currency=Currency.GBP)
    assert ids_shown(rep_client.get(PIPELINE, {"amount_min": "2300"})) == [kept.pk]


def test_every_save_keeps_the_figure_in_step(rep):
    deal = OpportunityFactory(owner=rep, amount=Decimal("1000"), currency=Currency.USD)
    assert deal.amount_reporting == Decimal("790.00")
    services.opportunity_update(actor=rep, opportunity=deal, currency=Currency.EUR)
    deal.refresh_from_db()
    assert deal.amount_reporting == Decimal("850.00")
    deal.amount = Decimal("2000")
    deal.save(update_fields=["amount"])
    deal.refresh_from_db()
    assert deal.amount_reporting == Decimal("1700.00")


def test_reprice_brings_stored_figures_in_step_after_a_rate_change(settings, rep, capsys):
    euro = OpportunityFactory(owner=rep, amount=Decimal("100.01"), currency=Currency.EUR)
    pound = OpportunityFactory(owner=rep, amount=Decimal("100"), currency=Currency.GBP)
    settings.DEBRIEF_CURRENCY_RATES = {"GBP": "1", "EUR": "0.9", "USD": "0.8"}
    call_command("reprice_deals")
    assert "Repriced 1 deal." in capsys.readouterr().out
    euro.refresh_from_db()
    pound.refresh_from_db()
    # The database rounds as Python does, to the cent.
    assert euro.amount_reporting == to_reporting(Decimal("100.01"), "EUR") == Decimal("90.01")
    assert pound.amount_reporting == Decimal("100.00")
    assert reprice(batch_size=1) == 0  # nothing left to change, in any batch size
    assert Opportunity.objects.filter(amount_reporting=0).count() == 0
