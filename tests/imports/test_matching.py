"""Which existing company and competitor a row means: names by casefold, domains kept apart."""

import pytest

from customers.models import Company
from opportunities.models import Competitor, Opportunity
from tests.factories import CompanyFactory, CompetitorFactory

from .conftest import check_and_run, create, salesforce_csv, sf_row

NAMES = ["Straße Analytics", "ÉCLAIR BI"]
# The same names as rows may spell them: other capitals, "ss" for "ß".
SPELLINGS = {"Straße Analytics": "STRASSE ANALYTICS", "ÉCLAIR BI": "éclair bi"}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("spelling", ["same", "other"])
def test_a_row_names_an_existing_competitor_in_any_case(
    name, spelling, world, django_capture_on_commit_callbacks
):
    existing = CompetitorFactory(name=name)
    written = name if spelling == "same" else SPELLINGS[name]
    row = sf_row(1, **{"Main Competitor(s)": written})
    history_import = create(world, salesforce_csv([row]))

    done = check_and_run(world, history_import, django_capture_on_commit_callbacks)

    assert done.status == "done", done.errors
    assert Competitor.objects.count() == 1
    assert Opportunity.objects.get().primary_competitor == existing


@pytest.mark.parametrize("name", NAMES)
def test_a_row_names_an_existing_company_in_any_case(
    name, world, django_capture_on_commit_callbacks
):
    same = CompanyFactory(name=name, domain="")
    rows = [
        sf_row(1, **{"Account Name": name, "Website": ""}),
        sf_row(2, **{"Account Name": name.upper(), "Website": ""}),
        sf_row(3, **{"Account Name": name.casefold(), "Website": ""}),
    ]
    history_import = create(world, salesforce_csv(rows))

    checked = services_check(history_import)
    assert checked.companies_created == 0
    done = check_and_run(world, checked, django_capture_on_commit_callbacks)

    assert done.companies_created == 0
    assert Company.objects.count() == 1
    assert set(Opportunity.objects.values_list("company", flat=True)) == {same.pk}


def services_check(history_import):
    from imports import services

    return services.history_import_check(history_import=history_import)


def test_a_name_does_not_join_companies_with_different_domains(
    world, django_capture_on_commit_callbacks
):
    theirs = CompanyFactory(name="Acme", domain="acme.com")
    row = sf_row(1, **{"Account Name": "Acme", "Website": "acme.co.uk"})
    history_import = create(world, salesforce_csv([row]))

    assert services_check(history_import).companies_created == 1
    done = check_and_run(world, history_import, django_capture_on_commit_callbacks)

    deal = Opportunity.objects.select_related("company").get()
    assert done.companies_created == 1
    assert deal.company != theirs
    assert (deal.company.name, deal.company.domain) == ("Acme", "acme.co.uk")
    theirs.refresh_from_db()
    assert theirs.domain == "acme.com"


def test_a_name_joins_a_company_when_one_side_has_no_domain(
    world, django_capture_on_commit_callbacks
):
    with_domain = CompanyFactory(name="Globex", domain="globex.com")
    without = CompanyFactory(name="Initech", domain="")
    rows = [
        sf_row(1, **{"Account Name": "Globex", "Website": ""}),
        sf_row(2, **{"Account Name": "Initech", "Website": "initech.com"}),
    ]
    done = check_and_run(
        world, create(world, salesforce_csv(rows)), django_capture_on_commit_callbacks
    )

    assert done.companies_created == 0
    companies = dict(Opportunity.objects.values_list("title", "company"))
    assert companies == {"Deal 1": with_domain.pk, "Deal 2": without.pk}
    without.refresh_from_db()
    assert without.domain == "initech.com"  # an empty domain is filled in
    with_domain.refresh_from_db()
    assert with_domain.domain == "globex.com"


def test_a_company_created_without_domain_takes_a_later_rows_domain(
    world, django_capture_on_commit_callbacks
):
    rows = [
        sf_row(1, **{"Account Name": "Acme", "Website": ""}),
        sf_row(2, **{"Account Name": "ACME", "Website": "acme.com"}),
    ]
    history_import = create(world, salesforce_csv(rows))
    assert services_check(history_import).companies_created == 1

    done = check_and_run(world, history_import, django_capture_on_commit_callbacks)

    company = Company.objects.get()
    assert done.companies_created == 1
    assert (company.name, company.domain) == ("Acme", "acme.com")
    assert Opportunity.objects.filter(company=company).count() == 2


def test_a_domain_reaches_a_company_created_in_an_earlier_batch(
    world, settings, django_capture_on_commit_callbacks
):
    settings.DEBRIEF_IMPORT_SINGLE_TRANSACTION_ROWS = 1
    settings.DEBRIEF_IMPORT_BATCH_ROWS = 1
    rows = [
        sf_row(1, **{"Account Name": "Acme", "Website": ""}),
        sf_row(2, **{"Account Name": "Acme", "Website": "acme.com"}),
    ]
    done = check_and_run(
        world, create(world, salesforce_csv(rows)), django_capture_on_commit_callbacks
    )

    company = Company.objects.get()
    assert done.companies_created == 1
    assert company.domain == "acme.com"


def test_a_company_spelt_with_ss_is_the_one_spelt_with_sharp_s(
    world, django_capture_on_commit_callbacks
):
    same = CompanyFactory(name="Straße Analytics", domain="")
    row = sf_row(1, **{"Account Name": "STRASSE ANALYTICS", "Website": ""})
    done = check_and_run(
        world, create(world, salesforce_csv([row])), django_capture_on_commit_callbacks
    )

    assert done.companies_created == 0
    assert Opportunity.objects.get().company == same
