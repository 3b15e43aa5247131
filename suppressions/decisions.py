"""
Contact suppression: one place decides whether a company or contact may be pitched a product
on a day, and why not.

Dates are days in the organisation's time zone (settings.TIME_ZONE). A suppression applies
from `starts_on` to `until`, BOTH INCLUDED: a 90-day rule on a deal lost on 1 March covers
1 March to 29 May, and pitching is allowed again on 30 May. No `until` means indefinitely.

Every enforcement point (creating, editing and reopening a deal, the call-list check, the
JSON API) goes through `check` or `check_many` (`check_keys` for call lists). What changes
suppressions is in services.py.
"""

import datetime
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any, ClassVar

from django.core.exceptions import ValidationError
from django.db import connections
from django.db.models import F, Q, QuerySet
from django.db.models.lookups import In
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import get_language

from customers.models import Company, Contact
from opportunities.models import Opportunity, Product
from suppressions.models import (
    OverrideStatus,
    Suppression,
    SuppressionOverride,
    SuppressionReason,
    SuppressionScope,
)


def today() -> datetime.date:
    """Today in the organisation's time zone: the day every check is made for."""
    return timezone.localdate()


def active_on(day: datetime.date) -> Q:
    return Q(lifted_at__isnull=True, starts_on__lte=day) & (
        Q(until__isnull=True) | Q(until__gte=day)
    )


def _fmt(day: datetime.date) -> str:
    return _fmt_in(day, get_language())


@lru_cache(maxsize=2048)
def _fmt_in(day: datetime.date, language: str | None) -> str:
    # Formatting a date goes through the translation machinery (~30 µs); a call list describes
    # tens of thousands of suppressions that share a few hundred days.
    return date_format(day, "j M Y")


_REASON_LABELS = dict(SuppressionReason.choices)
_VERBS = {
    SuppressionReason.DECLINED: "declined",
    SuppressionReason.BOUGHT: "bought",
    SuppressionReason.NO_DECISION: "ended without a decision",
}
# What _sentence() needs, as values_list() names, in its argument order.
_SENTENCE_FIELDS = (
    "contact_id",
    "contact__full_name",
    "company__name",
    "reason",
    "note",
    "starts_on",
    "scope",
    "product_id",
    "product__name",
    "product_line_id",
    "product_line__name",
    "source_opportunity_id",
    "source_opportunity__title",
    "source_opportunity__owner__full_name",
    "rule_id",
    "rule__name",
    "until",
)


def _sentence(
    contact_id,
    contact_name,
    company_name,
    reason,
    note,
    starts_on,
    scope,
    product_id,
    product_name,
    line_id,
    line_name,
    deal_id,
    deal_title,
    deal_owner,
    rule_id,
    rule_name,
    until,
    fmt: Callable[[datetime.date], str] = _fmt,
) -> str:
    """describe() from plain values, so that many suppressions can be described at once."""
    who = contact_name if contact_id else company_name
    if reason == SuppressionReason.DO_NOT_CONTACT:
        note = f" ({note})" if note else ""
        return f"{who} is on the do-not-contact list since {fmt(starts_on)}{note}."
    if scope == SuppressionScope.ALL:
        what = "anything"
    elif scope == SuppressionScope.PRODUCT:
        what = product_name if product_id else ""
    elif scope == SuppressionScope.PRODUCT_LINE:
        what = f"any {line_name} product" if line_id else ""
    else:
        raise KeyError(scope)
    verb = _VERBS.get(reason) or str(_REASON_LABELS.get(reason, reason)).lower()
    source = f" in “{deal_title}” ({deal_owner})" if deal_id else ""
    rule = f" Rule “{rule_name}”." if rule_id else ""
    until = fmt(until) if until else "further notice"
    return (
        f"{who} {verb}{source} on {fmt(starts_on)}.{rule} "
        f"Do not pitch {what} to {'them' if contact_id else who} "
        f"until {until} (inclusive)."
    )


def describe(suppression: Suppression) -> str:
    """A plain sentence: who, why, the source deal and rule, and until when."""
    s = suppression
    deal = s.source_opportunity if s.source_opportunity_id else None
    return _sentence(
        s.contact_id,
        s.contact.full_name if s.contact_id else None,
        None if s.contact_id else s.company.name,
        s.reason,
        s.note,
        s.starts_on,
        s.scope,
        s.product_id,
        s.product.name if s.product_id else None,
        s.product_line_id,
        s.product_line.name if s.product_line_id else None,
        s.source_opportunity_id,
        deal.title if deal else None,
        deal.owner.full_name if deal else None,
        s.rule_id,
        s.rule.name if s.rule_id else None,
        s.until,
    )


class AnyOf(In):
    """
    `field IN (values)` sent as one array parameter on PostgreSQL (`= ANY(%s)`): a batch of
    thousands of values is then one parameter and one short statement instead of thousands of
    placeholders. Other databases get the plain IN list.
    """

    def as_postgresql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        values = list(self.rhs)
        # Integers and strings go as one array literal, which costs a few string operations;
        # psycopg adapts a list element by element (about 1 µs each).
        if all(type(value) is int for value in values):
            return f"{lhs} = ANY(%s::bigint[])", (*lhs_params, _array_literal(map(str, values)))
        if all(type(value) is str for value in values):
            return f"{lhs} = ANY(%s::text[])", (*lhs_params, _array_literal(values, quote=True))
        field = self.lhs.output_field
        values = [field.get_db_prep_value(value, connection) for value in values]
        return f"{lhs} = ANY(%s)", (*lhs_params, values)


def _array_literal(values: Iterable[str], quote: bool = False) -> str:
    """A PostgreSQL array literal; quoted elements escape backslashes and double quotes."""
    if quote:
        values = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + ",".join(values) + "}"


def describe_many(ids: Iterable[int]) -> dict[int, str]:
    """describe() for many suppressions at once, in one query: id -> sentence."""
    ids = set(ids)
    if not ids:
        return {}
    rows = (
        Suppression.objects.filter(AnyOf(F("id"), ids))
        .order_by()
        .values_list("id", *_SENTENCE_FIELDS)
    )
    return {pk: _sentence(*values) for pk, *values in rows}


@dataclass(frozen=True)
class Verdict:
    """
    What check() decided: the suppression that explains it best (`suppression`), any others
    that apply as well (`others`, so that a refusal can name every one), and the manager's
    exception that lets the pitch through despite them (`override`).
    """

    suppression: Suppression | None = None
    override: SuppressionOverride | None = None
    others: tuple[Suppression, ...] = ()

    @property
    def suppressed(self) -> bool:
        return self.suppression is not None

    @property
    def blocked(self) -> bool:
        return self.suppressed and self.override is None

    @property
    def until(self) -> datetime.date | None:
        return self.suppression.until if self.suppression else None

    @cached_property
    def sentences(self) -> list[str]:
        """One sentence per suppression that applies, the deciding one first (one query)."""
        if not self.suppressed:
            return []
        applying = (self.suppression, *self.others)
        described = describe_many([s.pk for s in applying])
        return [described.get(s.pk) or describe(s) for s in applying]

    @cached_property
    def message(self) -> str:
        """Every sentence, and the exception if a manager approved one."""
        if not self.suppressed:
            return ""
        text = " ".join(self.sentences)
        if self.override is not None:
            text += f" A manager approved an exception ({self.override.decided_by})."
        return text

    def error(self) -> ValidationError:
        """
        The refusal as a form error per suppression: code "do_not_contact" for a do-not-contact
        entry (no exception can let it through), "suppressed" for the others.
        """
        applying = (self.suppression, *self.others) if self.suppressed else ()
        return ValidationError(
            [
                ValidationError(
                    sentence,
                    code="do_not_contact"
                    if s.reason == SuppressionReason.DO_NOT_CONTACT
                    else "suppressed",
                )
                for s, sentence in zip(applying, self.sentences, strict=True)
            ]
        )


# A refusal names at most this many of the suppressions that apply (a handful in practice).
MAX_NAMED = 20

# The single check's winner and the others that apply, read without joins or ORM query
# building: it runs on every keystroke of the deal form. The order is the one that explains a
# block best: do-not-contact first, then the longest-lasting (no end date first), the newest.
_WINNER_SQL = f"""
    SELECT {", ".join(f.column for f in Suppression._meta.concrete_fields)}
    FROM {Suppression._meta.db_table}
    WHERE company_id = %s
      AND lifted_at IS NULL AND starts_on <= %s AND (until IS NULL OR until >= %s)
      AND (contact_id IS NULL OR contact_id = %s)
      AND (scope = %s OR (scope = %s AND product_id = %s) OR (scope = %s AND product_line_id = %s))
    ORDER BY CASE WHEN reason = %s THEN 0 ELSE 1 END, until DESC NULLS FIRST, id DESC
    LIMIT {MAX_NAMED}
"""


def check(
    *,
    company_id: int,
    contact_id: int | None,
    product_id: int,
    product_line_id: int,
    on: datetime.date | None = None,
    opportunity_id: int | None = None,
    requester_id: int | None = None,
) -> Verdict:
    """
    May this company / contact be pitched this product on `on` (default today)? At most two
    indexed queries: the best matching suppression, then (only when suppressed) an approved
    override for exactly this deal, or an unused one the requester asked for this pitch.
    """
    day = on or today()
    params = [
        company_id,
        day,
        day,
        contact_id,
        SuppressionScope.ALL,
        SuppressionScope.PRODUCT,
        product_id,
        SuppressionScope.PRODUCT_LINE,
        product_line_id,
        SuppressionReason.DO_NOT_CONTACT,
    ]
    applying = list(Suppression.objects.raw(_WINNER_SQL, params))
    if not applying:
        return Verdict()
    suppression, others = applying[0], tuple(applying[1:])
    if suppression.reason == SuppressionReason.DO_NOT_CONTACT:
        return Verdict(suppression, others=others)
    overrides = SuppressionOverride.objects.filter(
        status=OverrideStatus.APPROVED,
        company_id=company_id,
        contact_id=contact_id,
        product_id=product_id,
    )
    if opportunity_id is not None:
        pitch = Q(opportunity_id=opportunity_id)
        if requester_id is not None:
            pitch |= Q(opportunity__isnull=True, used_at__isnull=True, requested_by_id=requester_id)
        overrides = overrides.filter(pitch)
    elif requester_id is not None:
        overrides = overrides.filter(
            opportunity__isnull=True, used_at__isnull=True, requested_by_id=requester_id
        )
    else:
        return Verdict(suppression, others=others)
    override = overrides.select_related("decided_by").order_by("-decided_at").first()
    return Verdict(suppression, override, others)


# --- open deals under a suppression ------------------------------------------------------------


@dataclass(frozen=True)
class DealFlag:
    """
    An open deal that a suppression now covers. The rule: a deal opened before the suppression
    started stays workable (edited, moved, closed as usual) and carries this flag everywhere it
    is shown; only a new pitch (a new deal, or this one moved to another company, contact or
    product) is refused. `exception` is set when a manager approved an exception for it.
    """

    reason: str
    until: datetime.date | None  # None: until further notice
    count: int
    exception: bool = False

    @property
    def do_not_contact(self) -> bool:
        return self.reason == SuppressionReason.DO_NOT_CONTACT

    @property
    def label(self) -> str:
        """Short text for a badge: "Do not contact", "Suppressed until 3 Mar 2027"."""
        if self.do_not_contact:
            return "Do not contact"
        if self.exception:
            return "Suppressed · exception approved"
        return f"Suppressed until {_fmt(self.until)}" if self.until else "Suppressed"


# The scope column of an approved exception's row in _suppressions_and_exceptions (no
# suppression has it).
_EXCEPTION_ROW = "exception"


def _suppressions_and_exceptions(day: datetime.date, company_ids: set, deal_ids: list) -> list:
    """
    (company id, contact id, scope, product id, line id, reason, until) of the companies' active
    suppressions on `day`, then (deal id, None, _EXCEPTION_ROW, None, ...) of the deals'
    approved exceptions: one statement, written out because building it with the ORM (a union
    of two annotated querysets) cost twice as long as running it, on the pipeline's and the
    board's every view.
    """
    db = Suppression.objects.db
    quote = connections[db].ops.quote_name
    companies, deals = ", ".join(["%s"] * len(company_ids)), ", ".join(["%s"] * len(deal_ids))
    sql = (
        "SELECT company_id, contact_id, scope, product_id, product_line_id, reason, until "
        f"FROM {quote(Suppression._meta.db_table)} "
        f"WHERE company_id IN ({companies}) AND lifted_at IS NULL AND starts_on <= %s "
        "AND (until IS NULL OR until >= %s) "
        "UNION ALL "
        "SELECT opportunity_id, NULL, %s, NULL, NULL, NULL, NULL "
        f"FROM {quote(SuppressionOverride._meta.db_table)} "
        f"WHERE opportunity_id IN ({deals}) AND status = %s"
    )
    params = [*company_ids, day, day, _EXCEPTION_ROW, *deal_ids, OverrideStatus.APPROVED.value]
    with connections[db].cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    # SQLite gives a compound statement's dates back as text.
    as_date = Suppression._meta.get_field("until").to_python
    return [(*row[:6], as_date(row[6])) for row in rows]


def flags_for_deals(
    deals: Iterable[tuple[int, int, int | None, int, int]], *, on: datetime.date | None = None
) -> dict[int, DealFlag]:
    """
    The open deals, given as (deal id, company id, contact id, product id, product line id),
    that an active suppression covers on `on` (default today), by deal id. One query whatever
    the number of deals: the companies' active suppressions and, under UNION ALL, the deals'
    approved exceptions (a short index read by deal; most deals have none).
    """
    deals = list(deals)
    if not deals:
        return {}
    day = on or today()
    by_company: dict[int, list[tuple]] = {}
    excepted: set[int] = set()
    for row in _suppressions_and_exceptions(day, {d[1] for d in deals}, [d[0] for d in deals]):
        if row[2] == _EXCEPTION_ROW:
            excepted.add(row[0])
        else:
            by_company.setdefault(row[0], []).append(row[1:])
    found: dict[int, tuple[list[tuple], int]] = {}
    for deal_id, company_id, contact_id, product_id, line_id in deals:
        applying = [
            (reason, until)
            for s_contact, scope, s_product, s_line, reason, until in by_company.get(company_id, ())
            if (s_contact is None or s_contact == contact_id)
            and (
                scope == SuppressionScope.ALL
                or (scope == SuppressionScope.PRODUCT and s_product == product_id)
                or (scope == SuppressionScope.PRODUCT_LINE and s_line == line_id)
            )
        ]
        if applying:
            found[deal_id] = applying
    flags = {}
    for deal_id, applying in found.items():
        # The same order as check(): do-not-contact first, then the longest-lasting.
        reason, until = min(
            applying,
            key=lambda a: (
                a[0] != SuppressionReason.DO_NOT_CONTACT,
                a[1] is not None,
                -a[1].toordinal() if a[1] else 0,
            ),
        )
        flags[deal_id] = DealFlag(
            reason=reason,
            until=until,
            count=len(applying),
            exception=deal_id in excepted and reason != SuppressionReason.DO_NOT_CONTACT,
        )
    return flags


# --- many at once: call lists and the API ------------------------------------------------------


@dataclass
class Pitch:
    """One row of a call list, already normalised."""

    email: str = ""
    phone: str = ""
    domain: str = ""
    product: str = ""


@dataclass(frozen=True)
class Result:
    suppressed: bool
    reason: str = ""
    until: datetime.date | None = None
    matched: bool = True
    kind: str = ""  # the deciding suppression's SuppressionReason, for counting by reason


_NOT_MATCHED = Result(suppressed=False, matched=False)
_CLEAR = Result(suppressed=False)


@dataclass
class Lookups:
    """
    What checking one call list has read so far, so that each batch reads only what is new:
    people by e-mail and phone, companies by domain (each as (contact_id, company_id) pairs),
    names, each company's active suppressions, and the results they give. Lives as long as one
    file, and forgets everything when it holds more than MAX_HELD entries (reading again is
    only slower), so that its memory stays bounded however large the database.
    """

    MAX_HELD: ClassVar[int] = 200_000  # about 70 MB

    day: datetime.date | None = None
    by_email: dict[str, Sequence[tuple[int, int]]] = field(default_factory=dict)
    by_phone: dict[str, Sequence[tuple[int, int]]] = field(default_factory=dict)
    by_domain: dict[str, Sequence[tuple[None, int]]] = field(default_factory=dict)
    contact_names: dict[int, str] = field(default_factory=dict)
    company_names: dict[int, str] = field(default_factory=dict)
    # Company id -> its active suppressions on `day` as tuples, best first; see _ranked().
    suppressions: dict[int, tuple[tuple, ...]] = field(default_factory=dict)
    results: dict[int, Result] = field(default_factory=dict)  # by suppression id
    strings: dict[str | None, str | None] = field(default_factory=dict)  # see _ranked()
    held: int = 0  # about how many entries all of the above hold

    def start(self, day: datetime.date) -> None:
        """Check the next batch on `day`, forgetting all if the day changed or it holds a lot."""
        if self.day != day or self.held > self.MAX_HELD:
            for value in vars(self).values():
                if isinstance(value, dict):
                    value.clear()
            self.day, self.held = day, 0


# What check_many() reads of a suppression: the first eight decide, the rest describe.
_MANY_FIELDS = (
    "id",
    "contact_id",
    "scope",
    "product_id",
    "product_line_id",
    "until",
    "reason",
    "starts_on",
    "note",
    "source_opportunity_id",
    "rule_id",
    "product__name",
    "product_line__name",
    "rule__name",
    "company_id",
)


def _ranked(row: tuple, shared: Callable[[Any, Any], Any]) -> tuple:
    """
    A suppression row of _MANY_FIELDS, led by the key that sorts the one that explains a block
    best first: do-not-contact, then the longest-lasting (no end date first), then the newest
    start, then the newest id. check() orders the same way, except for the start.
    Scopes, reasons and the names of products, lines and rules repeat on every row; `shared`
    turns each into one string object, which keeps a large file's cache small.
    """
    pk, contact_id, scope, product_id, line_id, until, reason, starts_on, note, *rest = row
    deal_id, rule_id, product_name, line_name, rule_name, company_id = rest
    rank = (
        reason != SuppressionReason.DO_NOT_CONTACT,
        until is not None,
        -until.toordinal() if until else 0,
        -starts_on.toordinal(),
        -pk,
    )
    return (
        rank,
        pk,
        contact_id,
        shared(scope, scope),
        product_id,
        line_id,
        until,
        shared(reason, reason),
        starts_on,
        note,
        deal_id,
        rule_id,
        shared(product_name, product_name),
        shared(line_name, line_name),
        shared(rule_name, rule_name),
        company_id,
    )


def check_many(
    pitches: Iterable[Pitch],
    *,
    on: datetime.date | None = None,
    products: dict | None = None,
    lookups: Lookups | None = None,
) -> list[Result]:
    """
    Check a batch of call-list rows set-based: at most four queries per batch (people by
    e-mail or phone, companies by domain, their active suppressions, the deals that the
    deciding suppressions came from), whatever its size. Without a product, any active
    suppression of the person or company counts.
    `products` maps lower-cased product names to (product_id, line_id); see product_index().
    `lookups` carries what earlier batches of the same file read; see Lookups.
    """
    keys = [(p.email, p.phone, p.domain, p.product) for p in pitches]
    return check_keys(keys, on=on, products=products, lookups=lookups)


def check_keys(
    keys: list[tuple[str, str, str, str]],
    *,
    on: datetime.date | None = None,
    products: dict | None = None,
    lookups: Lookups | None = None,
) -> list[Result]:
    """
    check_many() for pitches as (email, phone, domain, product) tuples, as a call list makes
    them by the hundred thousand: a tuple of strings is cheaper to make than a Pitch, and the
    garbage collector stops tracking it, where batches of long-lived Pitch objects made it walk
    the whole heap again and again (0.4 s of a 100,000-row list).
    """
    day = on or today()
    products = products if products is not None else product_index()
    seen = lookups if lookups is not None else Lookups()
    seen.start(day)
    # Only the people and domains not read before, and the companies they bring: those of the
    # ones read before are there already (Lookups forgets all of them at once).
    known_email, known_phone, known_domain = seen.by_email, seen.by_phone, seen.by_domain
    companies = _read_people(
        seen,
        {key[0] for key in keys if key[0] and key[0] not in known_email},
        {key[1] for key in keys if key[1] and key[1] not in known_phone},
    )
    companies |= _read_domains(
        seen, {key[2] for key in keys if key[2] and key[2] not in known_domain}
    )
    _read_suppressions(seen, {c for c in companies if c not in seen.suppressions})

    everything, product_scope, line_scope = (
        SuppressionScope.ALL,
        SuppressionScope.PRODUCT,
        SuppressionScope.PRODUCT_LINE,
    )
    suppressions, decided = seen.suppressions, seen.results
    by_email, by_phone, by_domain = seen.by_email.get, seen.by_phone.get, seen.by_domain.get
    product_of = {
        cell: products.get(cell.strip().lower()) if cell else None
        for cell in {key[3] for key in keys}
    }
    results: list[Result | None] = []
    # Winners that decide a row for the first time: their results need their sentences.
    undecided: dict[int, tuple] = {}
    pending: list[tuple[int, int]] = []  # (position in results, suppression id)
    for email, phone, domain, cell in keys:
        targets = by_email(email, ()) + by_phone(phone, ()) + by_domain(domain, ())
        if not targets:
            results.append(_NOT_MATCHED)
            continue
        product = product_of[cell]
        best = None
        for contact_id, company_id in targets:
            for s in suppressions[company_id]:
                if s[2] is not None and s[2] != contact_id:
                    continue
                if product is not None and not (
                    s[3] == everything
                    or (s[3] == product_scope and s[4] == product[0])
                    or (s[3] == line_scope and s[5] == product[1])
                ):
                    continue
                if best is None or s[0] < best[0]:
                    best = s
                break  # best first: the rest of this company's cannot beat it
        if best is None:
            results.append(_CLEAR)
        else:
            result = decided.get(best[1])
            if result is None:
                undecided[best[1]] = best
                pending.append((len(results), best[1]))
            results.append(result)
    if undecided:
        _describe(seen, undecided.values())
        for position, pk in pending:
            results[position] = decided[pk]
    return results  # type: ignore[return-value]  # no None left


def _fetch(rows: QuerySet) -> list[tuple]:
    """
    The rows of a values_list() query, fetched in one call: iterating the queryset fetches 100
    rows at a time and handles each row in Python again (about 1 µs a row, a tenth of a second
    for a 100,000-row call list). Only for columns that need no conversion from what the
    database driver returns (no JSON, no decimals on SQLite).
    """
    sql, params = rows.query.sql_with_params()
    with connections[rows.db].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _read_people(seen: Lookups, emails: set[str], phones: set[str]) -> set[int]:
    """The contacts with these e-mail addresses or phone numbers; their companies' ids."""
    if not emails and not phones:
        return set()
    people = Q()
    if emails:
        people |= AnyOf(F("email"), emails)
    if phones:
        people |= AnyOf(F("phone_normalized"), phones)
    by_email, by_phone = seen.by_email, seen.by_phone
    known = len(seen.contact_names)
    by_email.update(dict.fromkeys(emails, ()))
    by_phone.update(dict.fromkeys(phones, ()))
    contact_names, company_names = seen.contact_names, seen.company_names
    companies = set()
    rows = Contact.objects.filter(people).order_by()
    for cid, company_id, email, phone, name, company_name in _fetch(
        rows.values_list(
            "id", "company_id", "email", "phone_normalized", "full_name", "company__name"
        )
    ):
        if email in emails:
            by_email[email] = (*by_email[email], (cid, company_id))
        if phone in phones:
            by_phone[phone] = (*by_phone[phone], (cid, company_id))
        contact_names[cid] = name
        company_names[company_id] = company_name
        companies.add(company_id)
    seen.held += len(emails) + len(phones) + len(contact_names) - known
    return companies


def _read_domains(seen: Lookups, domains: set[str]) -> set[int]:
    """The companies with these domains; their ids."""
    if not domains:
        return set()
    seen.by_domain.update(dict.fromkeys(domains, ()))
    companies = set()
    rows = Company.objects.filter(AnyOf(F("domain"), domains)).order_by()
    for company_id, domain, name in _fetch(rows.values_list("id", "domain", "name")):
        seen.by_domain[domain] = ((None, company_id),)
        seen.company_names[company_id] = name
        companies.add(company_id)
    seen.held += len(domains)
    return companies


def _read_suppressions(seen: Lookups, company_ids: set[int]) -> None:
    """These companies' suppressions that are active on seen.day, best first."""
    if not company_ids:
        return
    found: dict[int, list[tuple]] = {company_id: [] for company_id in company_ids}
    rows = Suppression.objects.filter(AnyOf(F("company_id"), company_ids), active_on(seen.day))
    shared = seen.strings.setdefault
    for row in _fetch(rows.order_by().values_list(*_MANY_FIELDS)):
        found[row[-1]].append(_ranked(row, shared))
    seen.held += sum(len(ranked) for ranked in found.values())
    # Sorted tuples: the garbage collector stops tracking a tuple of tuples of plain values.
    seen.suppressions.update((company, tuple(sorted(ranked))) for company, ranked in found.items())


def _describe(seen: Lookups, winners: Iterable[tuple]) -> None:
    """The results of suppressions that decided a row for the first time; deals in one query."""
    winners = list(winners)
    deal_ids = {s[10] for s in winners if s[10] is not None}
    deals = {}
    if deal_ids:
        rows = Opportunity.objects.filter(AnyOf(F("id"), deal_ids)).order_by()
        for pk, title, owner in _fetch(rows.values_list("id", "title", "owner__full_name")):
            deals[pk] = (title, owner)
    language = get_language()

    def fmt(day: datetime.date) -> str:
        return _fmt_in(day, language)

    for s in winners:
        _, pk, contact_id, scope, product_id, line_id, until, reason, starts_on, note = s[:10]
        deal_id, rule_id, product_name, line_name, rule_name, company_id = s[10:]
        title, owner = deals.get(deal_id, (None, None))
        text = _sentence(
            contact_id,
            seen.contact_names.get(contact_id),
            seen.company_names.get(company_id),
            reason,
            note,
            starts_on,
            scope,
            product_id,
            product_name,
            line_id,
            line_name,
            deal_id,
            title,
            owner,
            rule_id,
            rule_name,
            until,
            fmt,
        )
        seen.results[pk] = Result(suppressed=True, reason=text, until=until, kind=reason)
    seen.held += 2 * len(winners)  # a sentence weighs about two entries


def product_index() -> dict[str, tuple[int, int]]:
    """Product names (lower case) to (product id, line id), in one query."""
    return {
        name.lower(): (pk, line_id)
        for pk, line_id, name in Product.objects.values_list("id", "line_id", "name")
    }
