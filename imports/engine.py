"""
The work behind the import services: reading a stored file, checking its rows, and turning a
batch of checked rows into companies, contacts, deals, reflections and suppressions with a
fixed number of queries per batch (never per row).

`services` wraps these in transactions and status changes; `selectors.value_rows` uses the
reading and suggestion helpers. Nothing here commits or changes an import's status.
"""

import datetime
import difflib
import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db.models import Case, Q, Value, When
from django.db.models.functions import Lower
from django.utils import timezone

from customers.models import Company, Contact, Region, Segment, SizeBand
from customers.normalize import normalize_domain
from imports import parsing
from imports.models import HistoryImport, ImportedDeal, MappingAction, MappingKind, ValueMapping
from imports.parsing import Row, ValueProblem
from imports.presets import FIELDS_BY_NAME
from opportunities.currency import to_reporting
from opportunities.models import Competitor, Opportunity, Product, StageChange
from reflections import selectors as reflection_selectors
from reflections.models import (
    Answer,
    Origin,
    Outcome,
    PromptSet,
    QuestionKind,
    Reason,
    Reflection,
)
from suppressions import services as suppressions_services
from suppressions.models import SuppressionRule

NO_REASON = "(no reason given)"
NO_PRODUCT = "(no product given)"
MAX_STORED_ERRORS = 200
# Keys of HistoryImport.options that are bookkeeping, not choices the dry run checked.
BOOKKEEPING = ("started_by",)


def single_transaction_rows() -> int:
    return settings.DEBRIEF_IMPORT_SINGLE_TRANSACTION_ROWS


def batch_rows() -> int:
    return settings.DEBRIEF_IMPORT_BATCH_ROWS


# --- the stored file -----------------------------------------------------------------------------


def read_bytes(history_import: HistoryImport) -> bytes:
    history_import.file.open("rb")
    try:
        return history_import.file.read()
    finally:
        history_import.file.close()


def read_text(history_import: HistoryImport) -> tuple[bytes, str]:
    data = read_bytes(history_import)
    return data, parsing.decode(data)


def records(text: str, columns: dict[str, str]) -> Iterator[Row | tuple[int, str]]:
    return parsing.iter_rows(text, columns)


def closed_records(text: str, columns: dict[str, str]) -> Iterator[tuple[Row, str]]:
    """The rows of closed deals with their outcome; the rest (unreadable rows, open deals,
    stages that mean nothing) are the check's to report, not the texts' to count."""
    for item in records(text, columns):
        if isinstance(item, tuple):
            continue
        try:
            outcome = parsing.parse_stage(item.values.get("stage", ""))
        except ValueProblem:
            continue
        if outcome != parsing.SKIP:
            yield item, outcome


# --- what an import knows before reading rows --------------------------------------------------


@dataclass
class RowError:
    row: int
    column: str
    message: str

    def as_dict(self) -> dict:
        return {"row": self.row, "column": self.column, "message": self.message}


@dataclass
class Deal:
    """A checked row, ready to become a deal (or to be counted as one)."""

    line: int
    external_id: str
    title: str
    company_name: str
    domain: str
    segment: str
    size_band: str
    region: str
    contact_email: str
    contact_name: str
    product_id: int
    line_id: int
    owner_id: int
    amount: Decimal
    currency: str
    outcome: str
    created: datetime.date
    closed: datetime.date
    competitor: str
    reason_text: str
    reason_id: int | None
    notes: str
    prompt_set_id: int


@dataclass
class Counts:
    deals_created: int = 0
    deals_existing: int = 0
    rows_skipped: int = 0
    companies_created: int = 0
    contacts_created: int = 0
    suppressions_derived: int = 0

    def add(self, other: "Counts") -> None:
        for name in vars(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def _choice(value: str, choices: type) -> str:
    """A choice's value from its value or label (any case), else ""."""
    folded = value.strip().casefold()
    if not folded:
        return ""
    for choice_value, label in choices.choices:
        if folded in (choice_value.casefold(), str(label).casefold()):
            return choice_value
    return ""


def _size_band(value: str) -> str:
    found = _choice(value, SizeBand)
    if found:
        return found
    digits = value.replace(",", "").strip()
    if digits.isdigit():
        n = int(digits)
        return (
            SizeBand.SMALL
            if n < 50
            else SizeBand.MID
            if n < 250
            else SizeBand.LARGE
            if n < 1000
            else SizeBand.ENTERPRISE
        )
    return ""


class Context:
    """
    Everything a check or a run reads once per file: the mapping decisions, the taxonomy's
    reasons, products, users, suppression rules and prompt sets. Plus, across batches, the
    external ids seen (duplicates) and, for the dry run, the companies and contacts it
    would create (so that each is counted once).
    """

    def __init__(self, history_import: HistoryImport, *, today: datetime.date | None = None):
        hi = history_import
        self.history_import = hi
        self.columns = hi.columns or {}
        self.options = hi.options or {}
        self.system_key = system_key(hi.system)
        self.salesforce = hi.preset == "salesforce"
        self.date_format = self.options.get("date_format", "iso")
        self.today = today or timezone.localdate()
        self.default_owner_id = hi.default_owner_id
        self.default_currency = hi.default_currency or "GBP"
        self.mappings = {
            (m.kind, m.outcome, m.text): m
            for m in ValueMapping.objects.select_related("reason", "product")
        }
        self.reasons = {r.pk: r for r in Reason.objects.all()}
        self.reason_by_label = {
            (r.outcome, parsing.normalise_text(r.label)): r.pk
            for r in self.reasons.values()
            if r.active
        }
        self.products = {p.pk: p for p in Product.objects.select_related("line")}
        self.product_by_name: dict[str, int] = {}
        for p in sorted(self.products.values(), key=lambda p: (not p.active, p.pk)):
            self.product_by_name.setdefault(parsing.normalise_text(p.name), p.pk)
        users = _users()
        self.owners = {email.lower(): pk for pk, email, _ in users}
        names = Counter(" ".join(name.split()).casefold() for _, _, name in users)
        self.owners_by_name = {
            " ".join(name.split()).casefold(): pk
            for pk, _, name in users
            if names[" ".join(name.split()).casefold()] == 1
        }
        self.rules: dict[str, list] = {}
        for rule in SuppressionRule.objects.filter(active=True):
            self.rules.setdefault(rule.trigger_outcome, []).append(rule)
        self._prompt_sets: dict[tuple[str, int], PromptSet | None] = {}
        self.seen_ids: dict[str, int] = {}
        self.plan = Plan()
        self.planned_contacts: set[tuple] = set()
        self.keys: set[tuple[str, str, str]] = set()

    # decisions

    def prompt_set(self, outcome: str, line_id: int) -> PromptSet | None:
        key = (outcome, line_id)
        if key not in self._prompt_sets:
            self._prompt_sets[key] = reflection_selectors.prompt_set_for(outcome, line_id)
        return self._prompt_sets[key]

    def reason_decision(self, outcome: str, key: str) -> tuple[str, int | None] | None:
        """(action, reason id) for a reason text: the saved mapping, else an exact label."""
        saved = self.mappings.get((MappingKind.REASON, outcome, key))
        if saved is not None:
            return saved.action, saved.reason_id
        exact = self.reason_by_label.get((outcome, key))
        if exact is not None:
            return MappingAction.MAP, exact
        return None

    def product_decision(self, key: str) -> tuple[str, int | None] | None:
        saved = self.mappings.get((MappingKind.PRODUCT, "", key))
        if saved is not None:
            return saved.action, saved.product_id
        exact = self.product_by_name.get(key)
        if exact is not None and key:
            return MappingAction.MAP, exact
        return None


def system_key(system: str) -> str:
    """The key deals are recognised by with their id: the system's name, spaces collapsed,
    casefolded ("Sales  force" and "salesforce" are one system)."""
    return " ".join(system.split()).casefold()[:60]


_CHECKSUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def salesforce_id(value: str) -> str:
    """
    A Salesforce record id in its 15-character form. Reports give the 15-character id
    ("Opportunity ID") or the 18-character one ("Opportunity ID (18)", "Id"), which is the same
    id with a 3-character case-safe checksum added; both must key the same deal. An
    18-character value whose last 3 characters are not that checksum is kept as it is.
    """
    if len(value) != 18 or not value.isalnum() or not value.isascii():
        return value
    checksum = ""
    for start in (0, 5, 10):
        bits = sum(1 << i for i, c in enumerate(value[start : start + 5]) if "A" <= c <= "Z")
        checksum += _CHECKSUM[bits]
    return value[:15] if value[15:] == checksum else value


def _users() -> list[tuple[int, str, str]]:
    from accounts.models import User

    return list(User.objects.values_list("pk", "email", "full_name"))


def reason_cell(values: dict[str, str], outcome: str) -> str:
    """The reason text of a row: a won deal's own column first when the file has one."""
    if outcome == Outcome.WON and values.get("won_reason"):
        return values["won_reason"]
    return values.get("reason", "")


# --- checking rows -------------------------------------------------------------------------------


def check_row(ctx: Context, row: Row) -> tuple[Deal | None, list[RowError]]:
    """
    A row as a Deal, or None for a row left out (open deal, a text mapped to "skip"), with
    every problem found (each naming the column's header). Also notes the texts the row uses
    (ctx.keys, for the fingerprint) and its external id (ctx.seen_ids, for duplicates).
    """
    v, line, cols = row.values, row.line, ctx.columns
    errors: list[RowError] = []

    def error(name: str, message: str) -> None:
        errors.append(RowError(line, cols.get(name) or FIELDS_BY_NAME[name].label, message))

    try:
        outcome = parsing.parse_stage(v.get("stage", ""))
    except ValueProblem as exc:
        error("stage", str(exc))
        return None, errors
    if outcome == parsing.SKIP:
        return None, errors

    external_id = v.get("external_id", "")
    if ctx.salesforce:
        external_id = salesforce_id(external_id)
    if not external_id:
        error("external_id", "The deal id is empty; every deal needs its id from the other CRM.")
    elif len(external_id) > 100:
        error("external_id", "The deal id is longer than 100 characters.")
    else:
        first = ctx.seen_ids.setdefault(external_id, line)
        if first != line:
            error(
                "external_id",
                f"The deal id “{external_id}” appears again: it is on line {first} already. "
                "Remove one of the two rows.",
            )

    company_name = v.get("company_name", "")
    if not company_name:
        error("company_name", "The company is empty; every deal needs its company.")
    elif len(company_name) > 200:
        error("company_name", "The company name is longer than 200 characters.")
    domain = normalize_domain(v.get("company_domain", ""))[:253]

    closed = created = None
    try:
        closed = parsing.parse_date(v.get("closed_date", ""), ctx.date_format)
        if closed is None:
            error("closed_date", "The closed date is empty; closed deals need one.")
        elif closed > ctx.today:
            error("closed_date", f"The closed date {closed:%d %b %Y} is in the future.")
    except ValueProblem as exc:
        error("closed_date", str(exc))
    try:
        created = parsing.parse_date(v.get("created_date", ""), ctx.date_format)
        if created and closed and created > closed:
            error(
                "created_date",
                f"The deal was created ({created:%d %b %Y}) after it closed ({closed:%d %b %Y}).",
            )
    except ValueProblem as exc:
        error("created_date", str(exc))

    amount, amount_currency = Decimal("0"), ""
    try:
        amount, amount_currency = parsing.parse_amount(v.get("amount", ""))
    except ValueProblem as exc:
        error("amount", str(exc))
    currency = ""
    try:
        currency = parsing.parse_currency(v.get("currency", ""))
        if currency and amount_currency and currency != amount_currency:
            error("currency", f"The currency {currency} differs from the amount's own sign.")
    except ValueProblem as exc:
        error("currency", str(exc))
    currency = currency or amount_currency or ctx.default_currency

    owner_cell = v.get("owner_email", "")
    owner_email = parsing.parse_email(owner_cell)
    owner_id = (
        ctx.owners.get(owner_email)
        if owner_email
        else ctx.owners_by_name.get(" ".join(owner_cell.split()).casefold())
    ) or ctx.default_owner_id
    if owner_id is None:
        who = f"Nobody here is “{owner_cell}”" if owner_cell else "The owner is empty"
        error(
            "owner_email",
            f"{who} and the import has no default owner. Choose a default owner, or add the "
            "user first.",
        )

    contact_cell = v.get("contact_email", "")
    contact_email = parsing.parse_email(contact_cell)
    if contact_cell and not contact_email:
        error("contact_email", f"“{contact_cell}” is not an e-mail address.")

    competitor = v.get("competitor", "")
    if len(competitor) > 100:
        error("competitor", "The competitor's name is longer than 100 characters.")

    product_text = v.get("product", "")
    product_key = parsing.normalise_text(product_text)
    ctx.keys.add((MappingKind.PRODUCT, "", product_key))
    product = None
    decision = ctx.product_decision(product_key)
    skipped = False
    if decision is None:
        error(
            "product",
            f"The product “{product_text or NO_PRODUCT}” is not mapped yet: choose the product "
            "it means, or skip its deals.",
        )
    elif decision[0] == MappingAction.SKIP:
        skipped = True
    elif decision[0] == MappingAction.MAP and decision[1] in ctx.products:
        product = ctx.products[decision[1]]
    else:
        error("product", f"The product “{product_text}” needs a product chosen for it.")

    reason_text = reason_cell(v, outcome)
    reason_key = parsing.normalise_text(reason_text)
    ctx.keys.add((MappingKind.REASON, outcome, reason_key))
    reason_id = None
    decision = ctx.reason_decision(outcome, reason_key)
    outcome_label = Outcome(outcome).label.lower()
    reason_column = "won_reason" if outcome == Outcome.WON and v.get("won_reason") else "reason"
    if decision is None:
        error(
            reason_column,
            f"The {outcome_label} reason “{reason_text or NO_REASON}” is not mapped yet: choose "
            "a reason, “Unknown”, or skip its deals.",
        )
    elif decision[0] == MappingAction.SKIP:
        skipped = True
    elif decision[0] == MappingAction.MAP:
        reason = ctx.reasons.get(decision[1])
        if reason is None or reason.outcome != outcome or not reason.active:
            error(
                reason_column,
                f"The {outcome_label} reason “{reason_text or NO_REASON}” is mapped to a reason "
                "that is retired or belongs to another outcome: map it again.",
            )
        else:
            reason_id = reason.pk

    prompt_set = None
    if product is not None:
        prompt_set = ctx.prompt_set(outcome, product.line_id)
        if prompt_set is None and not skipped:
            error(
                "stage",
                f"No active questions exist for {outcome_label} deals of {product.line}: an "
                "admin needs to set up a prompt set first.",
            )

    if skipped:
        return None, []  # "Skip these deals": whatever else the row holds does not matter
    if errors:
        return None, errors
    title = v.get("title", "") or f"{company_name}: {product.name}"
    return (
        Deal(
            line=line,
            external_id=external_id,
            title=title[:200],
            company_name=company_name,
            domain=domain,
            segment=_choice(v.get("segment", ""), Segment)
            or ctx.options.get("segment", Segment.SOFTWARE),
            size_band=_size_band(v.get("size_band", ""))
            or ctx.options.get("size_band", SizeBand.SMALL),
            region=_choice(v.get("region", ""), Region) or ctx.options.get("region", Region.UK),
            contact_email=contact_email[:254],
            contact_name=v.get("contact_name", "")[:150],
            product_id=product.pk,
            line_id=product.line_id,
            owner_id=owner_id,
            amount=amount,
            currency=currency,
            outcome=outcome,
            created=created or closed,
            closed=closed,
            competitor=competitor,
            reason_text=reason_text[:500],
            reason_id=reason_id,
            notes=v.get("notes", ""),
            prompt_set_id=prompt_set.pk,
        ),
        [],
    )


def check_rows(
    ctx: Context, items: Iterable[Row | tuple[int, str]]
) -> tuple[list[Deal], int, list[RowError]]:
    """(deals, rows left out, errors) of some records."""
    deals, skipped, errors = [], 0, []
    for item in items:
        if isinstance(item, tuple):
            errors.append(RowError(item[0], "", item[1]))
            continue
        deal, row_errors = check_row(ctx, item)
        if row_errors:
            errors.extend(row_errors)
        elif deal is None:
            skipped += 1
        else:
            deals.append(deal)
    return deals, skipped, errors


# --- batches -------------------------------------------------------------------------------------


def _existing_ids(ctx: Context, deals: list[Deal]) -> set[str]:
    return set(
        ImportedDeal.objects.filter(
            system_key=ctx.system_key, external_id__in=[d.external_id for d in deals]
        ).values_list("external_id", flat=True)
    )


def _name_variants(name: str) -> set[str]:
    """
    Spellings under which a name may be stored, as SQL's LOWER() may read them: SQLite lowers
    only ASCII letters and neither database folds "ß" to "ss", so the query fetches candidates
    by these and Python compares them by casefold.
    """
    forms = {name, name.lower(), name.upper(), name.casefold(), name.title(), name.capitalize()}
    lowered = {f.lower() for f in forms}
    ascii_lower = {"".join(c.lower() if c.isascii() else c for c in f) for f in forms}
    sharp_s = {f.replace("ss", "ß") for f in lowered if "ss" in f}
    return forms | lowered | ascii_lower | sharp_s


def ids_under_other_systems(ctx: Context, deals: list[Deal]) -> Counter:
    """How many of these deals' ids an import under another system's name brought in, by
    that import's id."""
    if not deals:
        return Counter()
    rows = (
        ImportedDeal.objects.filter(external_id__in=[d.external_id for d in deals])
        .exclude(system_key=ctx.system_key)
        .values_list("history_import_id", flat=True)
    )
    return Counter(rows)


def _companies(deals: list[Deal], filled: dict[int, str]) -> tuple[dict[str, int], dict]:
    """
    The existing companies a batch may mean: by domain, and by casefolded name as a list of
    [id, domain] (oldest first; `filled` holds domains given to them earlier in the run).
    """
    domains = {d.domain for d in deals if d.domain}
    names = {d.company_name.casefold() for d in deals}
    by_domain = dict(
        Company.objects.filter(domain__in=domains).order_by().values_list("domain", "pk")
    )
    variants: set[str] = set()
    for d in deals:
        variants |= _name_variants(d.company_name)
    by_name: dict[str, list] = {}
    rows = (
        Company.objects.annotate(lname=Lower("name"))
        .filter(Q(lname__in=variants) | Q(name__in=variants))
        .order_by("pk")
        .values_list("name", "pk", "domain")
    )
    for name, pk, domain in rows:
        if name.casefold() in names:
            by_name.setdefault(name.casefold(), []).append([pk, filled.get(pk, domain)])
    return by_domain, by_name


@dataclass
class Plan:
    """The companies a batch (or a whole dry run) would create, and domains it would fill."""

    by_domain: dict[str, tuple[str, str]] = field(default_factory=dict)
    by_name: dict[str, tuple[str, str]] = field(default_factory=dict)
    domain_of: dict[tuple[str, str], str] = field(default_factory=dict)
    # existing company id -> the domain a row gives it (it had none)
    fills: dict[int, str] = field(default_factory=dict)


def _company_refs(deals: list[Deal], plan: Plan) -> tuple[list, dict]:
    """
    Each deal's company: an existing id, or a key ("d", domain) / ("n", name) of one to create
    (recorded in `plan`). A name matches only when the company or the row has no domain; a
    company matched by name that has no domain takes the row's (plan.domain_of for a new one,
    plan.fills for an existing one). Returns the refs and the first deal of each new key.
    """
    by_domain, by_name = _companies(deals, plan.fills)
    refs, firsts = [], {}
    for d in deals:
        name = d.company_name.casefold()
        ref = None
        if d.domain:
            ref = by_domain.get(d.domain) or plan.by_domain.get(d.domain)
        if ref is None:
            for candidate in by_name.get(name, ()):
                if not d.domain or not candidate[1]:
                    ref = candidate[0]
                    if d.domain and not candidate[1]:
                        candidate[1] = plan.fills[ref] = d.domain
                    break
        if ref is None and name in plan.by_name:
            planned = plan.by_name[name]
            planned_domain = plan.domain_of.get(planned, "")
            if not d.domain or not planned_domain:
                ref = planned
                if d.domain and not planned_domain:
                    plan.domain_of[planned] = d.domain
                    plan.by_domain[d.domain] = planned
        if ref is None:
            ref = ("d", d.domain) if d.domain else ("n", name)
            if d.domain:
                plan.domain_of[ref] = d.domain
                plan.by_domain[d.domain] = ref
            plan.by_name.setdefault(name, ref)
            firsts[ref] = d
        refs.append(ref)
    return refs, firsts


def _existing_contacts(refs: list, deals: list[Deal]) -> dict[tuple[int, str], int]:
    company_ids = {r for r in refs if isinstance(r, int)}
    emails = {d.contact_email for d in deals if d.contact_email}
    if not company_ids or not emails:
        return {}
    rows = Contact.objects.filter(company_id__in=company_ids, email__in=emails).order_by()
    return {(c, e): pk for pk, c, e in rows.values_list("pk", "company_id", "email")}


def _in_window(rule, closed: datetime.date, today: datetime.date) -> bool:
    return closed + datetime.timedelta(days=rule.days - 1) >= today


def count_batch(ctx: Context, deals: list[Deal]) -> Counts:
    """What a batch would create, read with a few queries and nothing written."""
    counts = Counts()
    existing = _existing_ids(ctx, deals)
    new = [d for d in deals if d.external_id not in existing]
    counts.deals_existing = len(deals) - len(new)
    counts.deals_created = len(new)
    refs, firsts = _company_refs(new, ctx.plan)
    counts.companies_created = len(firsts)
    known = _existing_contacts(refs, new)
    for ref, d in zip(refs, new, strict=True):
        key = (ref, d.contact_email)
        if d.contact_email and key not in known and key not in ctx.planned_contacts:
            ctx.planned_contacts.add(key)
            counts.contacts_created += 1
        counts.suppressions_derived += sum(
            _in_window(rule, d.closed, ctx.today) for rule in ctx.rules.get(d.outcome, ())
        )
    return counts


def _noon(day: datetime.date) -> datetime.datetime:
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time(12)))


def write_batch(ctx: Context, deals: list[Deal], *, actor_id: int) -> tuple[Counts, set]:
    """
    Create a batch's deals with everything they bring, in a fixed number of queries: the
    caller holds the transaction. Deals an earlier import brought in are counted, not touched.
    Returns the counts and the closed dates of the deals created.
    """
    counts = Counts()
    existing = _existing_ids(ctx, deals)
    new, seen = [], set()
    for d in deals:
        # seen: a repeated id inside one batch (a resumed, unchecked file) is created once
        if d.external_id in existing or d.external_id in seen:
            counts.deals_existing += 1
        else:
            seen.add(d.external_id)
            new.append(d)
    if not new:
        return counts, set()

    plan = Plan()
    refs, firsts = _company_refs(new, plan)
    created_companies = Company.objects.bulk_create(
        [
            Company(
                name=d.company_name,
                domain=plan.domain_of.get(key, ""),
                segment=d.segment,
                size_band=d.size_band,
                region=d.region,
            )
            for key, d in firsts.items()
        ]
    )
    if plan.fills:  # existing companies without a domain, matched by name: they take the row's
        Company.objects.filter(pk__in=plan.fills, domain="").update(
            domain=Case(*(When(pk=pk, then=Value(v)) for pk, v in plan.fills.items()))
        )
    company_ids = {key: company.pk for key, company in zip(firsts, created_companies, strict=True)}
    company_of = [company_ids.get(ref, ref) for ref in refs]
    counts.companies_created = len(created_companies)

    known = _existing_contacts(company_of, new)
    to_create: dict[tuple[int, str], Contact] = {}
    for company_id, d in zip(company_of, new, strict=True):
        key = (company_id, d.contact_email)
        if d.contact_email and key not in known and key not in to_create:
            to_create[key] = Contact(
                company_id=company_id,
                full_name=d.contact_name or d.contact_email.split("@")[0],
                email=d.contact_email,
            )
    created_contacts = Contact.objects.bulk_create(list(to_create.values()))
    known.update({key: c.pk for key, c in zip(to_create, created_contacts, strict=True)})
    counts.contacts_created = len(created_contacts)

    competitor_ids = _competitors({d.competitor for d in new if d.competitor})

    now = timezone.now()
    opportunities = Opportunity.objects.bulk_create(
        [
            Opportunity(
                company_id=company_id,
                contact_id=known.get((company_id, d.contact_email)) if d.contact_email else None,
                product_id=d.product_id,
                owner_id=d.owner_id,
                title=d.title,
                amount=d.amount,
                currency=d.currency,
                amount_reporting=to_reporting(d.amount, d.currency),
                stage=d.outcome,
                expected_close_date=d.closed,
                closed_date=d.closed,
                primary_competitor_id=competitor_ids.get(d.competitor.casefold())
                if d.competitor
                else None,
                created_at=_noon(d.created),
                updated_at=now,
            )
            for company_id, d in zip(company_of, new, strict=True)
        ]
    )
    StageChange.objects.bulk_create(
        StageChange(
            opportunity_id=o.pk,
            from_stage="",
            to_stage=d.outcome,
            changed_by_id=actor_id,
            changed_at=_noon(d.closed),
        )
        for o, d in zip(opportunities, new, strict=True)
    )
    in_reports = ctx.history_import.in_reports
    reflections = Reflection.objects.bulk_create(
        [
            Reflection(
                opportunity_id=o.pk,
                author_id=actor_id,
                outcome=d.outcome,
                prompt_set_id=d.prompt_set_id,
                closed_date=d.closed,
                current=True,
                submitted_at=now,
                origin=Origin.IMPORTED,
                in_reports=in_reports,
            )
            for o, d in zip(opportunities, new, strict=True)
        ]
    )
    questions = _questions({d.prompt_set_id for d in new})
    answers = []
    for r, d in zip(reflections, new, strict=True):
        primary, competitor_question = questions.get(d.prompt_set_id, (None, None))
        if primary is not None:
            answers.append(
                Answer(
                    reflection_id=r.pk,
                    question_id=primary,
                    reason_id=d.reason_id,
                    is_unknown=d.reason_id is None,
                )
            )
        if competitor_question is not None and d.competitor:
            answers.append(
                Answer(
                    reflection_id=r.pk,
                    question_id=competitor_question,
                    competitor_id=competitor_ids[d.competitor.casefold()],
                )
            )
    Answer.objects.bulk_create(answers)
    PromptSet.objects.filter(pk__in={d.prompt_set_id for d in new}, frozen_at__isnull=True).update(
        frozen_at=now
    )
    ImportedDeal.objects.bulk_create(
        ImportedDeal(
            history_import_id=ctx.history_import.pk,
            system_key=ctx.system_key,
            external_id=d.external_id,
            opportunity_id=o.pk,
            row=d.line,
            reason_text=d.reason_text,
            notes=d.notes,
        )
        for o, d in zip(opportunities, new, strict=True)
    )
    for o, d in zip(opportunities, new, strict=True):
        o.product = ctx.products[d.product_id]  # _derived reads the product's line
    derived = suppressions_services.derive_for_history(
        [(o, d.outcome, d.closed) for o, d in zip(opportunities, new, strict=True)],
        rules=ctx.rules,
        on=ctx.today,
    )
    counts.suppressions_derived = len(derived)
    counts.deals_created = len(new)
    return counts, {d.closed for d in new}


def _competitors(names: set[str]) -> dict[str, int]:
    """
    Casefolded name -> id of each competitor named, creating the missing ones. The table is
    small, so it is read whole and compared by casefold here: SQL's LOWER() differs from
    casefold ("ß", and non-ASCII capitals on SQLite) and the name is unique.
    """
    if not names:
        return {}
    found: dict[str, int] = {}
    for name, pk in Competitor.objects.order_by("pk").values_list("name", "pk"):
        found.setdefault(name.casefold(), pk)
    folded = {}
    for name in sorted(names):
        folded.setdefault(name.casefold(), name)
    missing = [Competitor(name=folded[key]) for key in folded if key not in found]
    for competitor in Competitor.objects.bulk_create(missing):
        found[competitor.name.casefold()] = competitor.pk
    return {key: found[key] for key in folded}


def _questions(prompt_set_ids: set[int]) -> dict[int, tuple[int | None, int | None]]:
    """Prompt set id -> (its primary-reason question id, its competitor question id)."""
    from reflections.models import Question

    found: dict[int, list] = {pk: [None, None] for pk in prompt_set_ids}
    rows = Question.objects.filter(
        prompt_set_id__in=prompt_set_ids,
        kind__in=[QuestionKind.PRIMARY_REASON, QuestionKind.COMPETITOR],
    ).order_by("order", "pk")
    for pk, set_id, kind in rows.values_list("pk", "prompt_set_id", "kind"):
        slot = 0 if kind == QuestionKind.PRIMARY_REASON else 1
        if found[set_id][slot] is None:
            found[set_id][slot] = pk
    return {pk: (a, b) for pk, (a, b) in found.items()}


# --- fingerprint ---------------------------------------------------------------------------------


def stored_keys(history_import: HistoryImport) -> set[tuple[str, str, str]]:
    """The (kind, outcome, key) texts of a file's closed rows, as stored at upload."""
    return {(t["kind"], t["outcome"], t["key"]) for t in history_import.texts or []}


def fingerprint(ctx: Context, file_sha256: str, keys: set[tuple[str, str, str]]) -> str:
    """
    sha256 of the file (given by its own sha256, stored at upload), its columns, options,
    defaults and the decisions on its texts.
    """
    hi = ctx.history_import
    decisions = []
    for kind, outcome, key in sorted(keys):
        if kind == MappingKind.REASON:
            decisions.append([kind, outcome, key, ctx.reason_decision(outcome, key)])
        else:
            decisions.append([kind, outcome, key, ctx.product_decision(key)])
    settings_part = json.dumps(
        {
            "columns": hi.columns,
            "options": {k: v for k, v in (hi.options or {}).items() if k not in BOOKKEEPING},
            "system": ctx.system_key,
            "owner": hi.default_owner_id,
            "currency": hi.default_currency,
            "decisions": decisions,
        },
        sort_keys=True,
        default=str,
    )
    digest = hashlib.sha256(file_sha256.encode())
    digest.update(b"\x00")
    digest.update(settings_part.encode())
    return digest.hexdigest()


# --- suggestions ---------------------------------------------------------------------------------

# Words people type for the default taxonomy's reasons; a suggestion, never a decision.
_KEYWORDS = {
    "Price": ("price", "expensive", "cost", "cheap", "pricing"),
    "Budget": ("budget", "funds", "money"),
    "Lost to competitor": ("competitor", "went with", "chose", "rival"),
    "Timing": ("timing", "time", "later", "next year"),
    "Product fit": ("fit", "feature", "functionality", "requirements"),
    "Relationship": ("relationship", "rapport", "trust"),
    "Champion left": ("champion", "left the company", "sponsor"),
    "No decision / status quo": ("status quo", "no decision", "went dark", "ghosted"),
    "Budget frozen": ("budget", "freeze", "frozen"),
    "Priorities changed": ("priorit",),
}


@dataclass
class Suggestion:
    action: str = ""
    target_id: int | None = None
    label: str = ""
    score: int = 0


def _similarity(text: str, label: str) -> float:
    label = parsing.normalise_text(label)
    if not text or not label:
        return 0.0
    score = difflib.SequenceMatcher(None, text, label).ratio()
    if len(label) >= 4 and (label in text or text in label):
        score = max(score, 0.85)
    return score


def suggest(
    candidates: list[tuple[int, str]], key: str, *, keywords: bool = False
) -> tuple[int | None, str, int]:
    """The closest candidate (id, label) to a normalised text: (id, label, score 0-100)."""
    best: tuple[int | None, str, float] = (None, "", 0.0)
    for pk, label in candidates:
        score = _similarity(key, label)
        if keywords:
            for word in _KEYWORDS.get(label, ()):
                if word in key:
                    score = max(score, 0.7)
        if score > best[2]:
            best = (pk, label, score)
    return best[0], best[1], round(best[2] * 100)


SUGGEST_AT = 60


@dataclass
class TextCount:
    kind: str
    outcome: str
    key: str
    count: int = 0
    spellings: Counter = field(default_factory=Counter)

    @property
    def text(self) -> str:
        if not self.key:
            return NO_REASON if self.kind == MappingKind.REASON else NO_PRODUCT
        return self.spellings.most_common(1)[0][0]


def count_texts(history_import: HistoryImport) -> list[TextCount]:
    """The distinct reason (per outcome) and product texts of a file's closed rows."""
    if not history_import.file:
        return []  # imported or cancelled: the file is gone, the decisions stay saved
    _, text = read_text(history_import)
    return texts_of(text, history_import.columns or {})


def texts_of(text: str, columns: dict[str, str]) -> list[TextCount]:
    """The distinct reason (per outcome) and product texts of a decoded file's closed rows."""
    found: dict[tuple[str, str, str], TextCount] = {}
    for item, outcome in closed_records(text, columns):
        reason = reason_cell(item.values, outcome)
        product = item.values.get("product", "")
        for kind, out, original in (
            (MappingKind.REASON, outcome, reason),
            (MappingKind.PRODUCT, "", product),
        ):
            key = parsing.normalise_text(original)
            entry = found.get((kind, out, key))
            if entry is None:
                entry = found[(kind, out, key)] = TextCount(kind, out, key)
            entry.count += 1
            entry.spellings[re_space(original)] += 1
    return list(found.values())


def summarise(data: bytes, text: str, columns: dict[str, str]) -> tuple[str, list[dict]]:
    """
    What the screens need of a file, read once when it or its columns change: the sha256 of
    its bytes and its distinct texts as JSON ({kind, outcome, key, text, count}).
    """
    texts = [
        {"kind": t.kind, "outcome": t.outcome, "key": t.key, "text": t.text, "count": t.count}
        for t in texts_of(text, columns)
    ]
    return hashlib.sha256(data).hexdigest(), texts


def re_space(text: str) -> str:
    return " ".join(text.split())


def active_reasons() -> dict[str, list[tuple[int, str]]]:
    found: dict[str, list[tuple[int, str]]] = {}
    for pk, outcome, label in Reason.objects.filter(active=True).values_list(
        "pk", "outcome", "label"
    ):
        found.setdefault(outcome, []).append((pk, label))
    return found
