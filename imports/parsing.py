"""
Reading a history file and its values. The dry run and the import read a file through the same
functions, so that what the check accepted is exactly what gets imported.

Accepted (docs/importing-history.md says the same to admins):
- text: UTF-8 (with or without a byte-order mark) or Windows-1252; comma, semicolon or tab
  separated (whichever the header line holds most of); a header row first.
- amounts: digits with an optional currency sign or code before or after (£ € $, GBP EUR USD),
  thousands separated by commas ("1,234.50") or, in the European way, by dots or spaces when
  the decimals follow a comma ("1.234,50", "1 234,50"). A lone comma followed by exactly three
  digits is a thousands separator ("1,234" is 1234); by one or two digits, decimals ("12,5").
  Empty is 0. Negative amounts are refused.
- dates: ISO (2024-03-15, optionally with a time "2024-03-15 14:30[:00]" or "T14:30"),
  always; day-first (15/03/2024) or month-first (03/15/2024) slashed dates when the import's
  date_format option says "dmy" or "mdy" (Salesforce reports follow the user's locale). A time
  after a slashed date is ignored too.
"""

import csv
import datetime
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from crm_site import textfiles
from imports.presets import normalise_header


class FileProblem(Exception):
    """The file as a whole cannot be read; the message says why and what to do."""


@dataclass(frozen=True)
class Row:
    line: int  # the file line where the record starts (the header is line 1)
    values: dict[str, str]  # field -> raw cell, stripped


def decode(data: bytes) -> str:
    """The file's text: UTF-8 (a BOM is dropped) or else Windows-1252; refuses binary files."""
    try:
        return textfiles.decode(data, utf16=False)
    except textfiles.NotText as exc:
        raise FileProblem(_NOT_TEXT[exc.reason]) from None


_NOT_TEXT = {
    "empty": "The file is empty. Export the deals again and upload that file.",
    "binary": "This does not look like a CSV file (it holds binary data). Export the deals as "
    "CSV (comma-separated values) and upload that file.",
    "encoding": "The file's text is neither UTF-8 nor Windows-1252. Save it as “CSV UTF-8” and "
    "upload it again.",
}


def _delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_header(text: str, *, max_columns: int) -> list[str]:
    """The header row, checked: present, not too wide, no empty or repeated names."""
    first_line = text.split("\n", 1)[0]
    # Counted before csv parses it, so that a 10,000-column line costs nothing much.
    width = max(first_line.count(d) for d in (",", ";", "\t")) + 1
    if width > max_columns:
        raise FileProblem(
            f"The header row has {width:,} columns; at most {max_columns:,} are read. Export "
            "only the columns the import needs (see the column tables in the import guide)."
        )
    reader = csv.reader(io.StringIO(text), delimiter=_delimiter(first_line))
    try:
        header = next(reader)
    except StopIteration:
        raise FileProblem("The file is empty. Export the deals again.") from None
    except csv.Error as exc:
        raise FileProblem(f"The header row cannot be read as CSV ({exc}).") from None
    header = [h.replace("\ufeff", "").strip() for h in header]
    if not any(header):
        raise FileProblem(
            "The first line is empty: the file needs a header row with the column names."
        )
    seen: dict[str, str] = {}
    for name in header:
        key = normalise_header(name)
        if key and key in seen:
            raise FileProblem(
                f"The column “{name}” appears twice in the header. Rename or remove one of "
                "them and upload the file again."
            )
        seen[key] = name
    return header


def iter_rows(text: str, columns: dict[str, str]) -> Iterator[Row | tuple[int, str]]:
    """
    Each record as a Row holding the mapped fields, in file order. Blank lines are passed over.
    A record with more cells than the header yields (line, message) instead.
    """
    first_line = text.split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text), delimiter=_delimiter(first_line))
    header = [h.replace("\ufeff", "").strip() for h in next(reader)]
    position = {name: i for i, name in enumerate(header)}
    wanted = [(field, position[h]) for field, h in columns.items() if h in position]
    width = len(header)
    last = reader.line_num
    try:
        for record in reader:
            line, last = last + 1, reader.line_num
            if not any(cell.strip() for cell in record):
                continue
            if len(record) > width and any(c.strip() for c in record[width:]):
                yield (
                    line,
                    f"This row has {len(record)} cells but the header has {width}: a value "
                    "probably holds an unquoted comma or semicolon.",
                )
                continue
            size = len(record)
            yield Row(line, {field: record[i].strip() if i < size else "" for field, i in wanted})
    except csv.Error as exc:
        yield (last + 1, f"This row cannot be read as CSV ({exc}).")


def count_rows(text: str) -> int:
    """How many records follow the header (blank lines not counted)."""
    first_line = text.split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text), delimiter=_delimiter(first_line))
    next(reader, None)
    try:
        return sum(1 for record in reader if any(cell.strip() for cell in record))
    except csv.Error as exc:
        raise FileProblem(
            f"Line {reader.line_num} cannot be read as CSV ({exc}). Check that every quote "
            "is closed and export the file again."
        ) from None


# --- values ------------------------------------------------------------------------------------

CURRENCY_SIGNS = {"£": "GBP", "€": "EUR", "$": "USD"}
CURRENCIES = ("GBP", "EUR", "USD")
_AMOUNT = re.compile(
    r"^(?P<pre>[£€$]|[A-Za-z]{3})?\s*(?P<num>[0-9][0-9.,\s\u00a0']*)\s*(?P<post>[£€$]|[A-Za-z]{3})?$"
)


class ValueProblem(ValueError):
    """A cell that cannot be read; the message is for the admin."""


def parse_amount(cell: str) -> tuple[Decimal, str]:
    """(amount, currency code or "") from an amount cell; see the module docstring."""
    text = cell.strip()
    if not text:
        return Decimal("0"), ""
    if text.startswith("-") or text.startswith("(") or "-" in text:
        raise ValueProblem(f"“{cell}” is negative; amounts start at 0.")
    match = _AMOUNT.match(text)
    if not match:
        raise ValueProblem(f"“{cell}” is not an amount (write it like 1234.50 or 1,234.50).")
    currency = ""
    for sign in (match["pre"], match["post"]):
        if sign:
            code = CURRENCY_SIGNS.get(sign, sign.upper())
            if code not in CURRENCIES:
                raise ValueProblem(f"“{cell}”: only GBP, EUR and USD amounts can be imported.")
            if currency and code != currency:
                raise ValueProblem(f"“{cell}” names two currencies.")
            currency = code
    number = re.sub(r"[\s\u00a0']", "", match["num"])
    if "," in number and "." in number:
        decimal_mark = "," if number.rfind(",") > number.rfind(".") else "."
    elif "," in number:
        decimal_mark = "." if re.fullmatch(r"\d{1,3}(,\d{3})+", number) else ","
    else:
        decimal_mark = "," if re.fullmatch(r"\d{1,3}(\.\d{3}){2,}", number) else "."
    thousands = "." if decimal_mark == "," else ","
    whole, _, decimals = number.partition(decimal_mark)
    if thousands in decimals or decimal_mark in decimals:
        raise ValueProblem(f"“{cell}” is not an amount (write it like 1234.50 or 1,234.50).")
    if thousands in whole and not re.fullmatch(rf"\d{{1,3}}(\{thousands}\d{{3}})+", whole):
        raise ValueProblem(f"“{cell}” has its thousands separators in odd places.")
    whole = whole.replace(thousands, "")
    try:
        amount = Decimal(f"{whole}.{decimals}" if decimals else whole)
    except InvalidOperation:
        raise ValueProblem(f"“{cell}” is not an amount.") from None
    if len(decimals) > 2:
        raise ValueProblem(f"“{cell}” has more than two decimals.")
    if amount >= Decimal("1e12"):
        raise ValueProblem(f"“{cell}” is too large for an amount.")
    return amount, currency


def parse_currency(cell: str) -> str:
    """GBP, EUR or USD (any case, or its sign); "" for an empty cell."""
    text = cell.strip()
    if not text:
        return ""
    code = CURRENCY_SIGNS.get(text, text.upper())
    if code not in CURRENCIES:
        raise ValueProblem(
            f"“{cell}” is not a currency Debrief keeps; only GBP, EUR and USD can be imported."
        )
    return code


_ISO = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$"
)
_SLASHED = re.compile(
    r"^(\d{1,2})[/.](\d{1,2})[/.](\d{4})(?:,?\s+\d{1,2}:\d{2}(?::\d{2})?(?:\s*[AaPp][Mm])?)?$"
)
DATE_FORMATS = {"iso": "yyyy-mm-dd", "dmy": "dd/mm/yyyy", "mdy": "mm/dd/yyyy"}


def parse_date(cell: str, date_format: str = "iso") -> datetime.date | None:
    """A date from a cell (None when empty); ISO always, dd/mm or mm/dd as `date_format` says."""
    text = cell.strip()
    if not text:
        return None
    match = _ISO.match(text)
    if match:
        year, month, day = (int(g) for g in match.groups())
    else:
        match = _SLASHED.match(text)
        if not match or date_format not in ("dmy", "mdy"):
            expected = DATE_FORMATS.get(date_format, "yyyy-mm-dd")
            also = "" if expected == "yyyy-mm-dd" else " or yyyy-mm-dd"
            raise ValueProblem(f"“{cell}” is not a date in the form {expected}{also}.")
        first, second, year = (int(g) for g in match.groups())
        day, month = (first, second) if date_format == "dmy" else (second, first)
    try:
        return datetime.date(year, month, day)
    except ValueError:
        raise ValueProblem(f"“{cell}” is not a real date.") from None


# Stages and statuses of the three CRMs, normalised to letters only.
_OPEN_STAGES = {
    "open",
    "prospecting",
    "qualification",
    "needsanalysis",
    "valueproposition",
    "iddecisionmakers",
    "perceptionanalysis",
    "proposalpricequote",
    "negotiationreview",
    "appointmentscheduled",
    "qualifiedtobuy",
    "presentationscheduled",
    "decisionmakerboughtin",
    "contractsent",
    "proposal",
    "negotiation",
    "discovery",
    "demo",
    "leadin",
    "contactmade",
    "demoscheduled",
    "proposalmade",
    "negotiationsstarted",
    "new",
    "inprogress",
}
_SKIPPED_STATUSES = {"deleted"}
SKIP = "skip"


def parse_stage(cell: str) -> str:
    """won, lost or no_decision; SKIP for an open (or deleted) deal; else a ValueProblem."""
    letters = re.sub(r"[^a-z]", "", cell.casefold())
    if not letters:
        raise ValueProblem("The stage is empty; say whether the deal was won or lost.")
    if "nodecision" in letters:
        return "no_decision"
    if letters in _OPEN_STAGES or letters in _SKIPPED_STATUSES:
        return SKIP
    if letters in ("won", "closedwon", "win"):
        return "won"
    if letters in ("lost", "closedlost", "loss"):
        return "lost"
    raise ValueProblem(
        f"“{cell}” is not a stage Debrief knows: closed deals need a stage like “Closed Won”, "
        "“Closed Lost” or “No decision” (open stages are left out)."
    )


def normalise_text(text: str) -> str:
    """The key of a reason or product text: casefolded, spaces collapsed, trimmed."""
    return re.sub(r"\s+", " ", text).strip().casefold()[:200]


_EMAIL_IN = re.compile(r"[^\s<>()\[\],;\"']+@[^\s<>()\[\],;\"']+\.[^\s<>()\[\],;\"']+")


def parse_email(cell: str) -> str:
    """The e-mail address in a cell ("Jane Doe <jane@x.com>" too), lower-cased; "" if none."""
    match = _EMAIL_IN.search(cell)
    return match.group(0).strip(".").lower() if match else ""
