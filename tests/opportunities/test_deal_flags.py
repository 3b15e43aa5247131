"""
Open deals that a suppression now covers: flagged on the pipeline, the board and the deal page,
still workable (edit and save agree), and a refusal that names every suppression that applies.
"""

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from opportunities import services
from suppressions import decisions
from suppressions.models import (
    Suppression,
    SuppressionOverride,
    SuppressionReason,
    SuppressionScope,
)
from tests.factories import CompanyFactory, ContactFactory, OpportunityFactory, ProductFactory

pytestmark = pytest.mark.django_db
TODAY = timezone.localdate()


def days(n: int) -> datetime.date:
    return TODAY + datetime.timedelta(days=n)


def suppress(
    company, *, product=None, line=None, contact=None, reason=SuppressionReason.BOUGHT, **kw
):
    scope = (
        SuppressionScope.PRODUCT
        if product
        else SuppressionScope.PRODUCT_LINE
        if line
        else SuppressionScope.ALL
    )
    return Suppression.objects.create(
        company=company,
        contact=contact,
        scope=scope,
        product=product,
        product_line=line,
        reason=reason,
        starts_on=kw.pop("starts_on", days(-3)),
        until=kw.pop("until", days(60)),
        **kw,
    )


@pytest.fixture
def deal(rep):
    """An open deal, opened before its customer bought the product elsewhere."""
    return OpportunityFactory(owner=rep, title="Terminals for Brightwater")


def test_flags_cover_product_line_and_contact_scopes_and_ignore_others(deal, rep):
    other = OpportunityFactory(owner=rep)
    colleague = ContactFactory(company=deal.company)
    suppress(deal.company, product=deal.product, until=days(30))
    suppress(deal.company, line=deal.product.line, until=days(90))
    suppress(deal.company, contact=colleague)  # someone else at the company: not this deal
    suppress(deal.company, product=ProductFactory())  # another product: not this deal
    suppress(deal.company, starts_on=days(-30), until=days(-1))  # over
    rows = [
        (d.pk, d.company_id, d.contact_id, d.product_id, d.product.line_id) for d in (deal, other)
    ]
    flags = decisions.flags_for_deals(rows)
    assert set(flags) == {deal.pk}
    flag = flags[deal.pk]
    assert flag.count == 2 and flag.until == days(90) and not flag.exception
    assert flag.label.startswith("Suppressed until ")


def test_do_not_contact_wins_the_flag(deal):
    suppress(deal.company, until=None)
    suppress(
        deal.company, contact=deal.contact, reason=SuppressionReason.DO_NOT_CONTACT, until=None
    )
    rows = [(deal.pk, deal.company_id, deal.contact_id, deal.product_id, deal.product.line_id)]
    assert decisions.flags_for_deals(rows)[deal.pk].label == "Do not contact"


def test_pipeline_board_and_deal_page_show_the_flag(rep_client, deal):
    clear = OpportunityFactory(owner=deal.owner, title="Unsuppressed deal")
    suppress(deal.company, product=deal.product, until=days(30))
    until = f"Suppressed until {decisions._fmt(days(30))}"
    pipeline = rep_client.get(reverse("opportunities:pipeline")).text
    row = pipeline.split("Terminals for Brightwater</a>", 1)[1].split("</td>", 1)[0]
    assert until in row
    assert "Unsuppressed deal</a></td>" in pipeline
    board = rep_client.get(reverse("opportunities:board")).text
    card = board.split(f'id="card-{deal.pk}"', 1)[1].split("</article>", 1)[0]
    assert until in card
    assert (
        "suppressed-flag" not in board.split(f'id="card-{clear.pk}"', 1)[1].split("</article>")[0]
    )
    page = rep_client.get(reverse("opportunities:detail", args=[deal.pk])).text
    assert "This customer is suppressed for this product" in page
    assert "you can keep working it" in page
    clear_page = rep_client.get(reverse("opportunities:detail", args=[clear.pk])).text
    assert "deal-suppressed" not in clear_page


def _exception(suppression, deal, status):
    return SuppressionOverride.objects.create(
        suppression=suppression,
        company=deal.company,
        product=deal.product,
        opportunity=deal,
        requested_by=deal.owner,
        justification="They asked us back.",
        status=status,
    )


def test_an_approved_exception_softens_the_flag_of_its_own_deal_only(rep):
    approved, pending, other = (OpportunityFactory(owner=rep) for _ in range(3))
    for deal in (approved, pending, other):
        suppress(deal.company, product=deal.product)
    _exception(Suppression.objects.get(company=approved.company), approved, "approved")
    _exception(Suppression.objects.get(company=pending.company), pending, "pending")
    dnc = OpportunityFactory(owner=rep)
    _exception(suppress(dnc.company, reason=SuppressionReason.DO_NOT_CONTACT), dnc, "approved")
    rows = [
        (d.pk, d.company_id, d.contact_id, d.product_id, d.product.line_id)
        for d in (approved, pending, other, dnc)
    ]
    flags = decisions.flags_for_deals(rows)
    assert flags[approved.pk].exception
    assert flags[approved.pk].label == "Suppressed · exception approved"
    assert not flags[pending.pk].exception and not flags[other.pk].exception
    # No exception lets a do-not-contact through.
    assert not flags[dnc.pk].exception and flags[dnc.pk].label == "Do not contact"


def test_pipeline_flags_cost_one_query_whatever_the_page(client, rep, count_queries):
    client.force_login(rep)
    for _ in range(3):
        flagged = OpportunityFactory(owner=rep)
        suppress(flagged.company, product=flagged.product)
    _exception(Suppression.objects.get(company=flagged.company), flagged, "approved")
    client.get(reverse("opportunities:pipeline"))
    few, _ = count_queries(lambda: client.get(reverse("opportunities:pipeline")))
    for _ in range(10):
        flagged = OpportunityFactory(owner=rep)
        suppress(flagged.company, product=flagged.product)
    client.get(reverse("opportunities:pipeline"))  # new products: the catalogue is read again
    many, _ = count_queries(lambda: client.get(reverse("opportunities:pipeline")))
    # Session, user, the page with its count, the flags with their exceptions.
    assert few == many == 4


def test_editing_a_flagged_deal_saves_and_the_form_says_so(rep_client, rep, deal):
    suppress(deal.company, product=deal.product)
    status = rep_client.get(
        reverse("suppressions:pitch_status"),
        {
            "company": deal.company_id,
            "contact": deal.contact_id,
            "product": deal.product_id,
            "opportunity": deal.pk,
        },
    ).text
    assert "Suppressed since this deal was opened" in status and "blocked" not in status
    # The service agrees: a change that keeps the pitch saves.
    saved = services.opportunity_update(actor=rep, opportunity=deal, next_step="Call the CFO")
    assert saved.next_step == "Call the CFO"
    # Moving it to another product that is suppressed too is a new pitch: refused, in the form.
    other = ProductFactory(line=deal.product.line)
    suppress(deal.company, product=other)
    status = rep_client.get(
        reverse("suppressions:pitch_status"),
        {"company": deal.company_id, "product": other.pk, "opportunity": deal.pk},
    ).text
    assert "pitch-status blocked" in status
    with pytest.raises(ValidationError):
        services.opportunity_update(actor=rep, opportunity=deal, product=other)


def test_a_forged_deal_id_does_not_soften_the_status(rep_client, other_rep):
    theirs = OpportunityFactory(owner=other_rep)
    suppress(theirs.company, product=theirs.product)
    status = rep_client.get(
        reverse("suppressions:pitch_status"),
        {
            "company": theirs.company_id,
            "contact": theirs.contact_id,
            "product": theirs.product_id,
            "opportunity": theirs.pk,
        },
    ).text
    assert "pitch-status blocked" in status and "since this deal was opened" not in status


def test_a_refusal_names_every_suppression_that_applies(rep):
    company = CompanyFactory(name="Brightwater Foods")
    product = ProductFactory()
    suppress(company, product=product, until=days(30))
    suppress(company, line=product.line, until=days(90))
    with pytest.raises(ValidationError) as exc:
        services.opportunity_create(
            actor=rep,
            owner=rep,
            company=company,
            contact=None,
            product=product,
            title="Again",
            amount=1000,
            expected_close_date=days(20),
        )
    assert [e.code for e in exc.value.error_list] == ["suppressed", "suppressed"]
    messages = [m for e in exc.value.error_list for m in e.messages]
    assert any(product.name in m for m in messages)
    assert any(f"any {product.line.name} product" in m for m in messages)


def test_refused_form_names_all_and_carries_its_focus_target(rep_client, rep):
    company = CompanyFactory()
    product = ProductFactory()
    suppress(company, product=product)
    suppress(company, line=product.line)
    response = rep_client.post(
        reverse("opportunities:create"),
        {
            "company": company.pk,
            "company_name": company.name,
            "title": "Again",
            "product": product.pk,
            "amount": "1000",
            "currency": "GBP",
            "stage": "prospecting",
            "expected_close_date": days(20).isoformat(),
        },
        HTTP_HX_REQUEST="true",
    )
    html = response.text
    assert "2 suppressions apply" in html and "data-focus-after-swap" in html
    assert 'id="deal-form-errors" tabindex="-1"' in html


def test_new_deal_from_a_company_page_has_the_company_picked(rep_client):
    company = CompanyFactory(name="Brightwater Foods")
    contact = ContactFactory(company=company, full_name="Dana Buyer")
    html = rep_client.get(reverse("opportunities:create"), {"company": company.pk}).text
    assert f'name="company" value="{company.pk}"' in html
    assert 'value="Brightwater Foods"' in html
    assert f'<option value="{contact.pk}">Dana Buyer' in html
    for junk in ("abc", "0", "99999999", "²"):
        html = rep_client.get(reverse("opportunities:create"), {"company": junk}).text
        assert 'value="Brightwater Foods"' not in html
