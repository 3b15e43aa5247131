"""
What the columns of a file mean: the fields Debrief reads from a history file, and the headers
that the Salesforce, HubSpot and Pipedrive exports give them. docs/importing-history.md lists
the same headers for admins; keep the two in step.
"""

import difflib
import re
from typing import NamedTuple


class Field(NamedTuple):
    name: str
    label: str
    required: bool
    help: str


FIELDS: tuple[Field, ...] = (
    Field(
        "external_id",
        "Deal id in the other CRM",
        True,
        "Recognises the deal again, so a second import of the same file adds nothing.",
    ),
    Field("title", "Deal name", False, "Empty: the company and product name."),
    Field(
        "company_name",
        "Company name",
        True,
        "Matched to an existing company by domain, then by name; created if missing.",
    ),
    Field("company_domain", "Company website or domain", False, "Matched before the name."),
    Field(
        "contact_email",
        "Contact e-mail",
        False,
        "Matched to a contact of the company; created there if missing.",
    ),
    Field("contact_name", "Contact name", False, "The name of a new contact."),
    Field("product", "Product", True, "Each distinct product text is mapped to a product."),
    Field(
        "owner_email",
        "Owner (e-mail or name)",
        False,
        "Matched to a user by e-mail, or by full name when it holds no e-mail; deals of "
        "nobody known go to the default owner.",
    ),
    Field("amount", "Amount", True, "Like 1234.50, 1,234.50 or £1,234. Empty: 0."),
    Field("currency", "Currency", False, "GBP, EUR or USD. Empty: the import's currency."),
    Field(
        "stage",
        "Stage or status",
        True,
        "Won, lost or no decision are imported; open deals are left out.",
    ),
    Field("created_date", "Created date", False, "Empty: the closed date."),
    Field("closed_date", "Closed date", True, "Not in the future."),
    Field("competitor", "Competitor", False, "Matched by name; added if missing."),
    Field(
        "reason",
        "Reason (or lost reason)",
        False,
        "Each distinct text is mapped to a reason, to “Unknown”, or skipped.",
    ),
    Field(
        "won_reason",
        "Won reason, if in its own column",
        False,
        "Read for won deals when the file keeps their reason apart (HubSpot does).",
    ),
    Field("notes", "Notes", False, "Kept with the imported deal."),
    Field("segment", "Industry or segment", False, "For new companies; else the default."),
    Field("size_band", "Size or employees", False, "For new companies; else the default."),
    Field("region", "Region", False, "For new companies; else the default."),
)

FIELD_NAMES = tuple(f.name for f in FIELDS)
FIELDS_BY_NAME = {f.name: f for f in FIELDS}

# Preset -> field -> the headers accepted for it, the documented one first. Headers match
# case-insensitively, ignoring surrounding spaces.
PRESET_COLUMNS: dict[str, dict[str, tuple[str, ...]]] = {
    "salesforce": {
        "external_id": ("Opportunity ID", "Opportunity ID (18)", "Id"),
        "title": ("Opportunity Name",),
        "company_name": ("Account Name",),
        "company_domain": ("Website", "Account Website"),
        "contact_email": ("Contact: Email", "Primary Contact Email", "Email"),
        "contact_name": ("Primary Contact", "Contact: Full Name", "Contact Name"),
        "product": ("Product Name", "Product", "Primary Product"),
        "owner_email": ("Owner Email", "Opportunity Owner: Email", "Opportunity Owner Email"),
        "amount": ("Amount",),
        "currency": ("Opportunity Currency", "Amount Currency", "Currency"),
        "stage": ("Stage",),
        "created_date": ("Created Date",),
        "closed_date": ("Close Date",),
        "competitor": ("Main Competitor(s)", "Primary Competitor", "Competitor"),
        "reason": ("Win/Loss Reason", "Loss Reason", "Closed Lost Reason", "Reason"),
        "won_reason": (),
        "notes": ("Description", "Win/Loss Notes"),
        "segment": ("Industry",),
        "size_band": ("Employees",),
        "region": ("Region", "Account Region"),
    },
    "hubspot": {
        "external_id": ("Record ID", "Deal ID"),
        "title": ("Deal Name",),
        "company_name": ("Associated Company (Primary)", "Associated Company", "Company name"),
        "company_domain": ("Company Domain Name", "Associated Company Domain"),
        "contact_email": ("Associated Contact Email", "Contact email"),
        "contact_name": ("Associated Contact (Primary)", "Associated Contact"),
        "product": ("Product", "Product name", "Line Item Name"),
        "owner_email": ("Deal owner email", "Deal Owner Email", "Deal owner"),
        "amount": ("Amount",),
        "currency": ("Currency", "Deal currency code"),
        "stage": ("Deal Stage",),
        "created_date": ("Create Date",),
        "closed_date": ("Close Date",),
        "competitor": ("Competitor", "Primary competitor"),
        "reason": ("Closed Lost Reason",),
        "won_reason": ("Closed Won Reason",),
        "notes": ("Deal Description",),
        "segment": ("Industry",),
        "size_band": ("Number of Employees", "Company size"),
        "region": ("Region",),
    },
    "pipedrive": {
        "external_id": ("Deal - ID", "ID"),
        "title": ("Deal - Title", "Title"),
        "company_name": ("Deal - Organization", "Organization"),
        "company_domain": ("Organization - Website", "Website"),
        "contact_email": ("Person - Email", "Person - Email - Work", "Email"),
        "contact_name": ("Deal - Contact person", "Contact person"),
        "product": ("Deal - Product", "Deal - Products", "Product"),
        "owner_email": ("Deal - Owner email", "Deal - Owner", "Owner"),
        "amount": ("Deal - Value", "Value"),
        "currency": ("Deal - Currency", "Deal - Currency of Value", "Currency"),
        "stage": ("Deal - Status", "Status"),
        "created_date": ("Deal - Deal created", "Deal created"),
        "closed_date": ("Deal - Deal closed on", "Deal closed on", "Deal - Close time"),
        "competitor": ("Deal - Competitor", "Competitor"),
        "reason": ("Deal - Lost reason", "Lost reason"),
        "won_reason": (),
        "notes": ("Deal - Notes", "Notes"),
        "segment": ("Organization - Industry", "Industry"),
        "size_band": ("Organization - Number of employees", "Number of employees"),
        "region": ("Organization - Region", "Region"),
    },
}

PRESETS = ("salesforce", "hubspot", "pipedrive", "generic")


def normalise_header(header: str) -> str:
    """Casefolded, without a BOM and with runs of spaces as one, for comparing headers."""
    return re.sub(r"\s+", " ", header.replace("\ufeff", "")).strip().casefold()


def columns_for(preset: str, header: list[str]) -> dict[str, str]:
    """
    Field -> the file's own header, for the fields the file has. A preset takes the first of
    its accepted headers that the file holds; "generic" guesses (see suggest_columns).
    """
    if preset not in PRESET_COLUMNS:
        return suggest_columns(header)
    present = {}
    for original in header:
        present.setdefault(normalise_header(original), original)
    columns = {}
    for name, accepted in PRESET_COLUMNS[preset].items():
        for candidate in accepted:
            found = present.get(normalise_header(candidate))
            if found is not None:
                columns[name] = found
                break
    return columns


def missing_fields(columns: dict[str, str]) -> list[Field]:
    """The required fields that no column is mapped to, in FIELDS order."""
    return [f for f in FIELDS if f.required and not columns.get(f.name)]


def _names_for(field: Field) -> set[str]:
    names = {normalise_header(field.name.replace("_", " ")), normalise_header(field.label)}
    for accepted in PRESET_COLUMNS.values():
        names.update(normalise_header(h) for h in accepted[field.name])
    return names


def suggest_columns(header: list[str]) -> dict[str, str]:
    """
    A guess of field -> header for a file of unknown shape: a header that is exactly one of the
    names any preset accepts (or the field's own name or label), also once a bracketed part
    such as "(GBP)" is dropped, then the closest one by
    difflib's ratio (at least 0.8). Each header serves one field at most.
    """
    normalised = [(normalise_header(h), h) for h in header if h and h.strip()]
    used: set[str] = set()
    columns: dict[str, str] = {}
    names = {f.name: _names_for(f) for f in FIELDS}
    bare = [(re.sub(r"\s*\([^)]*\)", "", key).strip(), original) for key, original in normalised]
    for f in FIELDS:
        for key, original in [*normalised, *bare]:
            if key in names[f.name] and original not in used:
                columns[f.name] = original
                used.add(original)
                break
    for f in FIELDS:
        if f.name in columns:
            continue
        best, best_score = None, 0.8
        for key, original in normalised:
            if original in used:
                continue
            for name in names[f.name]:
                score = difflib.SequenceMatcher(None, key, name).ratio()
                if score > best_score:
                    best, best_score = original, score
        if best is not None:
            columns[f.name] = best
            used.add(best)
    return columns


def closest_header(expected: str, header: list[str]) -> str | None:
    """The file's header most like `expected` (difflib, at least 0.6), for error messages."""
    by_key = {normalise_header(h): h for h in header if h and h.strip()}
    match = difflib.get_close_matches(normalise_header(expected), list(by_key), n=1, cutoff=0.6)
    return by_key[match[0]] if match else None
