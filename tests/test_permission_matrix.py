"""
The permission matrix: every named URL, for every persona, with the status it must answer.
A URL pattern with no entry here fails `test_every_url_has_an_entry`, so a new view cannot
ship without someone deciding who may open it.

Personas: anonymous; rep (team North, owns the deal); other_rep (team South); manager
(manages North); other_manager (manages South); admin. Out-of-scope ids answer 404, never 403,
so that nobody learns what exists.
"""

from dataclasses import dataclass, field

import pytest
from django.urls import URLResolver, get_resolver, reverse

from reflections.models import Outcome
from suppressions import decisions
from suppressions.models import SuppressionOverride
from surveys import tokens as survey_tokens
from tests.factories import CompanyFactory, ContactFactory, OpportunityFactory, ProductFactory
from tests.reflections.conftest import lost_answers
from tests.reflections.test_close_service import close
from tests.surveys.conftest import ask_and_send

PERSONAS = ["anonymous", "rep", "other_rep", "manager", "other_manager", "admin"]
LOGIN = 302  # anonymous users are sent to the login page


@dataclass
class Entry:
    """How to call one URL and what each persona gets: a status, or a per-persona dict."""

    args: tuple = ()
    expect: dict | int = 200
    method: str = "get"
    query: str = ""
    data: dict = field(default_factory=dict)
    anonymous: int = LOGIN

    def status_for(self, persona: str) -> int:
        if persona == "anonymous":
            return self.anonymous
        return self.expect if isinstance(self.expect, int) else self.expect[persona]


def scoped(inside: int = 200, outside: int = 404, **overrides) -> dict:
    """The deal's owner, their manager and admins see it; the other team gets 404."""
    statuses = {
        "rep": inside,
        "other_rep": outside,
        "manager": inside,
        "other_manager": outside,
        "admin": inside,
    }
    statuses.update(overrides)
    return statuses


# {world} placeholders are filled from the objects made by the `world` fixture.
MATRIX: dict[str, Entry] = {
    "home": Entry(expect=302),
    "healthz": Entry(anonymous=200),
    "api_suppression_check": Entry(expect=405, anonymous=405),
    # A token, never a session: signed-in people get 401 like anybody without one.
    "api_suppression_changes": Entry(expect=401, anonymous=401),
    # Tokens only, and a token sees only its own lists (tests/suppressions/test_api_lists.py).
    "api_call_lists": Entry(expect=405, anonymous=405),
    "api_call_list": Entry(args=("{call_list_job}",), expect=401, anonymous=401),
    "api_call_list_result": Entry(args=("{call_list_job}",), expect=401, anonymous=401),
    "api_call_list_retry": Entry(args=("{call_list_job}",), expect=405, anonymous=405),
    "api_schema": Entry(anonymous=200),
    "login": Entry(expect=302, anonymous=200),
    "logout": Entry(expect=405, anonymous=405),
    "password_change": Entry(),
    "password_change_done": Entry(),
    "password_reset": Entry(anonymous=200),
    "password_reset_done": Entry(anonymous=200),
    "password_reset_confirm": Entry(args=("MQ", "bad-token"), anonymous=200),
    "password_reset_complete": Entry(anonymous=200),
    "accounts:team_list": Entry(),
    "accounts:team_detail": Entry(args=("{team}",), expect=scoped()),
    "customers:company_list": Entry(),
    "customers:company_create": Entry(),
    "customers:company_detail": Entry(args=("{company}",)),
    # A shared record: managers and admins edit any; a rep one they added or sell to.
    "customers:company_edit": Entry(args=("{company}",), expect=scoped(other_manager=200)),
    "customers:contact_create": Entry(args=("{company}",), expect=405),
    "suppressions:call_list_check": Entry(),
    # A call-list job is its uploader's (and administrators'); everyone else gets 404. Cancel
    # and retry of a checked list are refused with a message (302).
    "suppressions:call_list_job": Entry(args=("{call_list_job}",), expect=scoped(manager=404)),
    "suppressions:call_list_job_download": Entry(
        args=("{call_list_job}",), expect=scoped(manager=404)
    ),
    "suppressions:call_list_job_cancel": Entry(
        args=("{call_list_job}",), method="post", expect=scoped(302, manager=404)
    ),
    "suppressions:call_list_job_retry": Entry(
        args=("{call_list_job}",), method="post", expect=scoped(302, manager=404)
    ),
    "suppressions:pitch_status": Entry(query="?company={company}&product={product}"),
    "suppressions:override_list": Entry(),
    "suppressions:override_request": Entry(
        query="?company={company}&contact={contact}&product={product}"
    ),
    "suppressions:override_decide": Entry(
        args=("{override}",),
        method="post",
        data={"decision": "approve"},
        # Only a manager of the requester's team (or an admin) decides; others get 404.
        expect=scoped(inside=302, rep=404),
        anonymous=LOGIN,
    ),
    "suppressions:suppression_lift": Entry(
        args=("{suppression}",), expect=scoped(rep=404, other_manager=200)
    ),
    "suppressions:do_not_contact": Entry(args=("{company}",)),
    "opportunities:pipeline": Entry(),
    "opportunities:create": Entry(),
    "opportunities:detail": Entry(args=("{deal}",), expect=scoped()),
    "opportunities:edit": Entry(args=("{deal}",), expect=scoped()),
    "opportunities:company_autocomplete": Entry(query="?company_name=acme"),
    "opportunities:contact_options": Entry(query="?company={company}"),
    "opportunities:board": Entry(),
    "opportunities:move": Entry(
        args=("{deal}",), method="post", data={"to": "negotiation"}, expect=scoped(302)
    ),
    "opportunities:next_step": Entry(args=("{deal}",), expect=scoped()),
    "opportunities:plan": Entry(),
    "reflections:close": Entry(args=("{deal}", "lost"), expect=scoped()),
    "reflections:reopen": Entry(args=("{closed_deal}",), method="post", expect=scoped(302)),
    "reflections:detail": Entry(args=("{reflection}",), expect=scoped()),
    # Only the author amends (here the rep); everyone else gets 404.
    "reflections:amend": Entry(args=("{reflection}",), expect=scoped(manager=404, admin=404)),
    "reflections:debrief_create": Entry(args=("{company}",)),
    # Asking a buyer: the deal's owner, their manager and admins (a second ask is refused
    # with a message, still 302); the other team gets 404.
    "surveys:ask": Entry(args=("{closed_deal}",), method="post", expect=scoped(302)),
    # The buyer's pages need no login: the signed link is the key
    # (test_public_survey_urls_refuse_without_a_valid_token shows the other side).
    "surveys:answer": Entry(args=("{survey_token}",), anonymous=200),
    "surveys:thanks": Entry(args=("{survey_token}",), anonymous=200),
    "surveys:opt_out": Entry(args=("{survey_token}",), anonymous=200),
    "insights:dashboard": Entry(),
    # Everyone opens their own private page; whose it is never comes from the request
    # (tests/insights/test_my_reflections.py shows no one reads another's).
    "insights:my_reflections": Entry(query="?user={rep_id}"),
    "insights:export": Entry(args=("summary",)),
    "insights:refresh": Entry(method="post", expect=302),
    # Runs are organisation-wide; whoever presses refresh may be joining someone else's run.
    "insights:run_progress": Entry(args=("{run}",)),
}


def _url_names(patterns, namespace=None):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            if pattern.namespace == "admin":
                continue
            inner = pattern.namespace or namespace
            yield from _url_names(pattern.url_patterns, inner)
        elif pattern.name:
            yield f"{namespace}:{pattern.name}" if namespace else pattern.name


def test_every_url_has_an_entry():
    names = set(_url_names(get_resolver().url_patterns))
    assert names - set(MATRIX) == set(), "add these URLs to the permission matrix"
    assert set(MATRIX) - names == set(), "these matrix entries name no URL"


@pytest.fixture
def world(rep, other_rep, manager, other_manager, admin_user, lost_set, settings, tmp_path):
    from insights.models import InsightRun
    from tests.suppressions.test_call_list_jobs import checked_list_for

    company = CompanyFactory(name="Acme Matrix")
    contact = ContactFactory(company=company)
    product = ProductFactory()
    deal = OpportunityFactory(owner=rep, company=company, contact=contact, product=product)
    closed_deal = OpportunityFactory(owner=rep, company=company, contact=contact, product=product)
    reflection = close(rep, closed_deal, lost_answers(lost_set), outcome=Outcome.LOST)
    derived = closed_deal.suppressions.get()
    override = SuppressionOverride.objects.create(
        suppression=derived,
        company=company,
        contact=contact,
        product=product,
        requested_by=rep,
        justification="They asked us to call back.",
    )
    assert decisions.check(
        company_id=company.pk,
        contact_id=contact.pk,
        product_id=product.pk,
        product_line_id=product.line_id,
    ).suppressed
    run = InsightRun.objects.create(requested_by=manager)
    closed_deal.refresh_from_db()
    survey = ask_and_send(rep, closed_deal)
    settings.MEDIA_ROOT = tmp_path / "media"
    call_list_job = checked_list_for(rep, settings.MEDIA_ROOT)
    return {
        "call_list_job": call_list_job.pk,
        "survey_token": survey_tokens.make(survey),
        "team": rep.team_id,
        "company": company.pk,
        "contact": contact.pk,
        "product": product.pk,
        "deal": deal.pk,
        "closed_deal": closed_deal.pk,
        "reflection": reflection.pk,
        "suppression": derived.pk,
        "override": override.pk,
        "run": run.pk,
        "rep_id": rep.pk,
    }


def _fill(value: str, world: dict) -> str:
    return value.format(**world) if isinstance(value, str) else value


@pytest.mark.django_db
@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("name", sorted(MATRIX))
def test_permission_matrix(client, request, world, name, persona):
    entry = MATRIX[name]
    if persona != "anonymous":
        user = request.getfixturevalue("admin_user" if persona == "admin" else persona)
        client.force_login(user)
    url = reverse(name, args=[_fill(a, world) for a in entry.args]) + _fill(entry.query, world)
    response = getattr(client, entry.method)(url, entry.data)
    expected = entry.status_for(persona)
    assert response.status_code == expected, (
        f"{entry.method.upper()} {url} as {persona}: {response.status_code}, expected {expected}"
    )
    if persona == "anonymous" and expected == LOGIN:
        assert response.url.startswith(reverse("login"))


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["surveys:answer", "surveys:thanks", "surveys:opt_out"])
def test_public_survey_urls_refuse_without_a_valid_token(client, world, name):
    token = world["survey_token"]
    for bad in (token[:-1] + ("A" if token[-1] != "A" else "B"), "x", token.upper()):
        for method in ("get", "post"):
            response = getattr(client, method)(reverse(name, args=[bad]))
            assert response.status_code in (404, 405), (name, bad, method)
