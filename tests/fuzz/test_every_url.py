"""
Every URL, as every role, with hostile input: NUL bytes, lone surrogates and other bytes that
are not UTF-8, deep nesting, very long strings, odd numbers (1e999, NaN, -0), dates at the ends
of the calendar, ids out of any integer's range. Whatever arrives, the answer is never a 500,
and a refused POST changes nothing in the database.

The URLs and their arguments come from the permission matrix, which fails when a URL has no
entry: a new URL is fuzzed here as soon as it exists. In CI (on PostgreSQL, where NUL bytes and
out-of-range integers really break queries) the budget is 1,500 random requests per role and a
sweep of every URL with the nastiest values, over 10,000 requests in all; elsewhere
DEBRIEF_FUZZ_REQUESTS (default 200) random requests per role. The total is printed at the end of
the run.
"""

import json
import os
from urllib.parse import quote

import pytest
from django.db import connection
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from customers.models import Company, Contact
from opportunities.models import Opportunity, StageChange
from reflections.models import Answer, CallDebrief, Reflection
from suppressions.models import Suppression, SuppressionOverride
from surveys.models import SurveyAnswer, SurveyOptOut, SurveyRequest
from tests.fuzz import conftest as fuzz_log
from tests.test_permission_matrix import MATRIX, PERSONAS, _fill

pytestmark = pytest.mark.django_db

IN_CI = os.environ.get("CI", "").lower() == "true"
PER_ROLE = int(os.environ.get("DEBRIEF_FUZZ_REQUESTS") or (1500 if IN_CI else 200))

# Every parameter and field name the project's views read, and a few they do not.
NAMES = [
    "q", "page", "sort", "after", "before", "stage", "status", "product", "line", "owner",
    "close_from", "close_to", "amount_min", "amount_max", "company", "company_name", "contact",
    "kind", "period", "scope", "source", "outcome", "segment", "region", "to", "title",
    "amount", "currency", "expected_close_date", "primary_competitor", "next_step",
    "next_step_due", "note", "reason", "justification", "decision", "customer_said",
    "call_date", "objections", "high_card", "full_name", "email", "phone", "domain", "name",
    "revision", "prompt_set", "q_1", "q_1_source", "q_2", "q_3", "user", "id", "\x00", "",
]  # fmt: skip
# Text that has broken real queries and parsers somewhere, and its relatives.
NASTY = [
    "\x00", "a\x00b", "²", "١٢٣", "1e999", "1e999999", "-1e999", "NaN", "nan", "-0", "inf",
    "[1]", "123", "{}", "0001-01-01", "9999-12-31", "0000-00-00", "2026-02-30", "-1",
    "99999999999999999999", "-99999999999999999999", "1.0000000000000000000001",
    "'; DROP TABLE opportunities_opportunity;--", "<script>alert(1)</script>", "%00", "%",
    "\u202e", "😀", "\ufeff", "..", "../../etc/passwd", " ", "\r\n", "null", "true",
]  # fmt: skip
# Raw percent-encoded bytes that are not UTF-8 text (a lone surrogate, a stray byte, ...).
RAW = ["%ED%A0%80", "%FF", "%C0%AF", "%E2%82", "%00"]

value = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=40),
    st.integers(min_value=2_000, max_value=60_000).map(lambda n: "x" * n),
    st.integers(min_value=10, max_value=3_000).map(lambda n: "[" * n),
    st.integers().map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
raw_value = st.one_of(
    value.map(lambda v: quote(v.encode("utf-8", "surrogatepass"))), st.sampled_from(RAW)
)
pairs = st.lists(st.tuples(st.sampled_from(NAMES), raw_value), max_size=5)
arg = st.one_of(
    st.none(),  # the matrix's own argument
    st.sampled_from(["0", "99999999999999999999", "1", "-1", "x", "%00", "%ED%A0%80"]),
)
TABLES = [
    Company,
    Contact,
    Opportunity,
    StageChange,
    Reflection,
    Answer,
    CallDebrief,
    Suppression,
    SuppressionOverride,
    SurveyRequest,
    SurveyAnswer,
    SurveyOptOut,
]


def _counts() -> tuple[int, ...]:
    """Every watched table's row count, in one query (a POST is checked before and after)."""
    counts = ", ".join(f"(SELECT count(*) FROM {model._meta.db_table})" for model in TABLES)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {counts}")
        return tuple(cursor.fetchone())


def _url(name: str, objects: dict, args: list[str | None]) -> str:
    entry = MATRIX[name]
    real = [_fill(a, objects) for a in entry.args]
    url = reverse(name, args=real)
    for original, replacement in zip(real, args, strict=False):
        if replacement is not None:
            # Swap an argument in the path, where the URL's converter lets anything through.
            url = url.replace(f"/{original}/", f"/{replacement}/", 1)
    return url


def _request(client, name: str, url: str, method: str, query: list, body: list, as_json: bool):
    path = url + ("?" + "&".join(f"{quote(k)}={v}" for k, v in query) if query else "")
    if method == "get":
        return client.get(path)
    if as_json:
        data = json.dumps({k: v for k, v in body}) if body else "[" * 50_000
        return client.post(path, data=data, content_type="application/json")
    form = "&".join(f"{quote(k)}={v}" for k, v in body)
    return client.post(path, data=form, content_type="application/x-www-form-urlencoded")


@pytest.mark.parametrize("persona", PERSONAS)
def test_no_url_answers_500_to_hostile_input(client, request, world, persona):
    if persona != "anonymous":
        user = request.getfixturevalue("admin_user" if persona == "admin" else persona)
        client.force_login(user)
    client.raise_request_exception = False
    names = sorted(MATRIX)
    seen: set[str] = set()
    failures: list[str] = []

    @settings(
        max_examples=PER_ROLE,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        name=st.sampled_from(names),
        method=st.sampled_from(["get", "post"]),
        query=pairs,
        body=pairs,
        as_json=st.booleans(),
        args=st.lists(arg, max_size=2),
    )
    def probe(name, method, query, body, as_json, args):
        url = _url(name, world, args)
        before = _counts() if method == "post" else None
        response = _request(client, name, url, method, query, body, as_json)
        fuzz_log.record(name)
        seen.add(name)
        if response.status_code >= 500:
            failures.append(f"{method.upper()} {url} {query!r} {body!r}: {response.status_code}")
        elif before is not None and response.status_code >= 400:
            after = _counts()
            if after != before:
                failures.append(f"{method.upper()} {url} was refused but changed the database")

    probe()
    # Every URL once more, deterministically, with the nastiest values in every slot.
    for name in names:
        for method in ("get", "post"):
            for nasty in ("%00%ED%A0%80", quote("1e999999 9999-12-31 [1]")):
                url = _url(name, world, [])
                query = [(key, nasty) for key in NAMES[:30]]
                response = _request(client, name, url, method, query, query, False)
                fuzz_log.record(name)
                seen.add(name)
                if response.status_code >= 500:
                    failures.append(f"{method.upper()} {url} with {nasty}: 500")
    assert seen == set(names)
    assert not failures, failures[:20]
