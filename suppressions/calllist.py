"""
Checking a call list against the suppressions: a CSV comes in with any of the columns `email`,
`phone`, `company_domain` (and optionally `product`), and goes back out, streamed, with
`suppressed`, `reason`, `until` and `problem` added; or it is summarised (rows, suppressed, by
reason, rows with problems) for the page.

Rows keep their order and their cells as uploaded. A row whose number of values differs from the
header's keeps them all and says so in `problem`: a short row's missing cells are read and
written as blank, so that the added columns stay under their names; a long row's first values
are checked under the header's columns and its extra values follow `problem`, unchecked.

The file is read twice: once to validate all of it (text in UTF-8, with or without a byte order
mark, UTF-16 with its byte order mark, or Windows-1252; CSV; a usable column; at most MAX_ROWS
rows) before a single byte is answered, so a bad file gets a clear message instead of
half a download; then again in batches of BATCH_ROWS rows, each checked set-based with a fixed
number of queries. Nothing is stored.
"""

import codecs
import csv
import io
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter

from crm_site.csvsafe import FORMULA_STARTS, safe_cell
from customers.normalize import normalize_domain, normalize_email, normalize_phone
from suppressions import decisions
from suppressions.models import SuppressionReason

MAX_ROWS = 100_000
MAX_BYTES = 32 * 1024 * 1024
# Each batch costs four queries and their planning whatever its size, so larger batches are
# faster (5,000 rows: 2.5 s for 100,000 rows; 10,000: 2.2 s) until memory or SQLite's limit of
# 32,766 parameters a statement (e-mails and phones are one) gets in the way.
BATCH_ROWS = 10_000
# ... and at most this many cells: a 30 MB file of 10,000-cell rows held 10,000 of them at once.
BATCH_CELLS = 200_000
ADDED_CACHE = 50_000  # distinct results whose added cells are kept, per file
KEY_COLUMNS = ("email", "phone", "company_domain")
ADDED_COLUMNS = ("suppressed", "reason", "until", "problem")
# The summary lists this many rows with problems, then says how many more there are.
LISTED_PROBLEMS = 20


class CallListError(ValueError):
    """The file cannot be checked; the message says why and what to do."""


# Error messages name at most this many columns, then say how many more there are.
NAMED_COLUMNS = 5


@dataclass(frozen=True)
class Layout:
    header: list[str]
    columns: dict[str, int]  # known column name -> index
    rows: int
    encoding: str = "utf-8-sig"


@contextmanager
def _text(upload, encoding: str) -> Iterator[io.TextIOWrapper]:
    """The upload as text, detached afterwards so that the file stays open for a second read."""
    upload.seek(0)
    wrapper = io.TextIOWrapper(upload.file, encoding=encoding, newline="")
    try:
        yield wrapper
    finally:
        wrapper.detach()


def validate(upload) -> Layout:
    """Read the whole upload once and say what is wrong with it, or how it is laid out."""
    if upload.size == 0:
        raise CallListError("The file is empty.")
    if upload.size > MAX_BYTES:
        raise CallListError(
            f"The file is {upload.size / 1024 / 1024:.0f} MB; the limit is "
            f"{MAX_BYTES // 1024 // 1024} MB ({MAX_ROWS:,} rows). Split it and check each part."
        )
    encoding = _encoding(upload)
    try:
        with _text(upload, encoding) as text:
            layout = _layout(csv.reader(text, strict=True))
    except csv.Error as exc:
        raise CallListError(f"This is not a readable CSV file: {exc}.") from exc
    return Layout(layout.header, layout.columns, layout.rows, encoding)


def _encoding(upload) -> str:
    """
    How the file is written: a byte order mark says UTF-16 or UTF-8; without one, UTF-8 if
    every byte reads as UTF-8, else Windows-1252 (what older spreadsheet programs save as
    "CSV"), if every byte reads as that. Anything else, or a NUL in the text, is refused.
    """
    upload.seek(0)
    start = upload.read(4)
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _check(upload, "utf-16")
    try:
        return _check(upload, "utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return _check(upload, "cp1252")
    except UnicodeDecodeError as exc:
        raise CallListError(
            "The file is not text we can read (it is neither UTF-8, UTF-16 nor Windows-1252). "
            "Save it as “CSV UTF-8” and upload it again."
        ) from exc


def _check(upload, encoding: str) -> str:
    """Decode the whole file as `encoding` (UnicodeDecodeError if it is not)."""
    upload.seek(0)
    decoder = codecs.getincrementaldecoder(encoding)()
    for chunk in iter(lambda: upload.read(256 * 1024), b""):
        if "\x00" in decoder.decode(chunk):
            raise CallListError("This is not a CSV file (it contains binary data).")
    decoder.decode(b"", final=True)  # a file that ends inside a character
    return encoding


def _layout(reader) -> Layout:
    """The header's known columns and the number of non-empty rows."""
    header = next(reader, None)
    if header is None:
        raise CallListError("The file is empty.")
    names = [name.strip().lower() for name in header]
    columns = {name: i for i, name in enumerate(names) if name in (*KEY_COLUMNS, "product")}
    if not any(name in columns for name in KEY_COLUMNS):
        found = [h for h in header if h.strip()]
        named = ", ".join(found[:NAMED_COLUMNS]) or "nothing"
        if len(found) > NAMED_COLUMNS:
            named += f" and {len(found) - NAMED_COLUMNS:,} more"
        raise CallListError(
            "No usable column. The first line must name at least one of: "
            + ", ".join(KEY_COLUMNS)
            + f" (found: {named})."
        )
    rows = 0
    for row in reader:
        if not any(map(str.strip, row)):
            continue
        rows += 1
        if rows > MAX_ROWS:
            raise CallListError(
                f"The file has more than {MAX_ROWS:,} rows. Split it and check each part."
            )
    return Layout(header=header, columns=columns, rows=rows)


class _Normalised(dict):
    """One file's cells to their normalised form: lists repeat numbers and domains."""

    def __init__(self, normalise) -> None:
        super().__init__()
        self.normalise = normalise

    def __missing__(self, raw: str) -> str:
        value = self[raw] = self.normalise(raw)
        return value


def _pitches(layout: Layout):
    """A function from a batch of rows to their (email, phone, domain, product) keys."""
    # A missing column reads the blank cell that rows are padded with, at the header's width;
    # a long row is cut to that width first, so its extra values are never read as keys.
    blank = columns = len(layout.header)
    email, phone, domain, product = (
        layout.columns.get(name, blank) for name in (*KEY_COLUMNS, "product")
    )
    cells = itemgetter(email, phone, domain, product)
    width = max(email, phone, domain, product) + 1
    padding = ("",) * width
    phones, domains = _Normalised(normalize_phone), _Normalised(normalize_domain)

    def pitches(rows: list[tuple[str, ...]]) -> list[tuple[str, str, str, str]]:
        batch = []
        for row in rows:
            if len(row) > columns:
                row = row[:columns]
            if len(row) < width:
                row = row + padding[len(row) :]
            email, phone, domain, product = cells(row)
            batch.append((normalize_email(email), phones[phone], domains[domain], product.strip()))
        return batch

    return pitches


class _Line:
    """csv.writer target that hands back each line instead of storing it."""

    def write(self, value: str) -> str:
        return value


def problem(number: int, values: int, columns: int) -> str:
    """What is wrong with row `number` (a spreadsheet's numbering: the header is row 1)."""
    if values > columns:
        extra = values - columns
        return (
            f"Row {number:,} has {values:,} values but the header has {columns:,} columns: "
            f"only the first {columns:,} were checked, and the {extra:,} extra "
            f"{'value is' if extra == 1 else 'values are'} kept after the problem column. "
            "Check that each value is under the right name (a comma inside a value that is "
            "not in quotes splits it in two)."
        )
    return (
        f"Row {number:,} has {values:,} {'value' if values == 1 else 'values'} but the header "
        f"has {columns:,} columns: the missing ones were read as blank."
    )


def _batches(upload, layout: Layout) -> Iterator[tuple[list[tuple[str, ...]], dict[int, int]]]:
    """
    The non-empty rows in batches, each with its odd rows (more or fewer values than the
    header) as {position in the batch: row number}.
    """
    columns = len(layout.header)
    with _text(upload, layout.encoding) as text:
        reader = csv.reader(text, strict=True)
        next(reader, None)
        # Rows as tuples: the garbage collector stops tracking those, not lists (see
        # decisions.check_keys).
        batch: list[tuple[str, ...]] = []
        odd: dict[int, int] = {}
        cells = 0
        for number, row in enumerate(reader, 2):
            if not any(map(str.strip, row)):
                continue
            if len(row) != columns:
                odd[len(batch)] = number
            batch.append(tuple(row))
            cells += len(row)
            # Rows of thousands of cells fill memory long before BATCH_ROWS rows do.
            if len(batch) >= BATCH_ROWS or cells >= BATCH_CELLS:
                yield batch, odd
                batch, odd, cells = [], {}, 0
        if batch:
            yield batch, odd


def annotate(upload, layout: Layout) -> Iterator[str]:
    """
    The checked CSV, one batch of lines at a time: the original cells (escaped) and the four
    new ones. Holds one batch, never the file.
    """
    line = csv.writer(_Line()).writerow
    yield line([safe_cell(h) for h in layout.header] + list(ADDED_COLUMNS))
    products = decisions.product_index()
    lookups = decisions.Lookups()
    pitches = _pitches(layout)
    columns = len(layout.header)

    # The added cells as CSV, after a row's own: results repeat (one per suppression that
    # decides rows) and their reasons are long, so each is written once. A field is quoted on
    # its own, so a row's line is its own cells' line with these in place of the end of line.
    # Keyed by id(); `kept` keeps those results alive, so that an id stays theirs.
    added: dict[int, str] = {}
    kept: list[decisions.Result] = []

    def outcome(result: decisions.Result) -> list[str]:
        if not result.suppressed:
            return ["no", "", ""]
        until = result.until.isoformat() if result.until else "indefinite"
        return ["yes", safe_cell(result.reason), until]

    def guarded(cells) -> list[str]:
        # Only cells that may need it go through the guard: it runs for every cell.
        return [safe_cell(c) if c.startswith(FORMULA_STARTS) else c for c in cells]

    def odd_line(row: tuple[str, ...], number: int, result: decisions.Result) -> str:
        """A row of more or fewer values than the header: the added cells under their names."""
        own = list(row[:columns]) + [""] * (columns - len(row))
        note = problem(number, len(row), columns)
        return line(guarded(own) + outcome(result) + [note] + guarded(row[columns:]))

    def checked(batch: list[tuple[str, ...]], odd: dict[int, int]) -> str:
        results = decisions.check_keys(pitches(batch), products=products, lookups=lookups)
        if len(added) > ADDED_CACHE:
            added.clear()
            kept.clear()
        lines = []
        for row, result in zip(batch, results, strict=True):
            cells = added.get(id(result))
            if cells is None:
                cells = added[id(result)] = "," + line([*outcome(result), ""])
                kept.append(result)
            own = line(guarded(row))
            lines.append(own[:-2] + cells)  # without its "\r\n"
        for position, number in odd.items():
            lines[position] = odd_line(batch[position], number, results[position])
        return "".join(lines)

    for batch, odd in _batches(upload, layout):
        yield checked(batch, odd)


# The reasons in the order the summary names them.
REASONS = (
    SuppressionReason.DO_NOT_CONTACT,
    SuppressionReason.BOUGHT,
    SuppressionReason.DECLINED,
    SuppressionReason.NO_DECISION,
)


@dataclass(frozen=True)
class Summary:
    rows: int
    suppressed: int
    by_reason: list[tuple[str, int]]  # (label, rows) for each reason that suppressed any
    problems: int  # rows with more or fewer values than the header
    listed: list[str]  # what is wrong with the first LISTED_PROBLEMS of them

    @property
    def clear(self) -> int:
        return self.rows - self.suppressed


def summarise(upload, layout: Layout) -> Summary:
    """
    What checking the file finds, for the page: the same batches and queries as annotate(),
    counted instead of written.
    """
    products = decisions.product_index()
    lookups = decisions.Lookups()
    pitches = _pitches(layout)
    columns = len(layout.header)
    kinds: Counter[str] = Counter()
    rows = problems = 0
    listed: list[str] = []
    for batch, odd in _batches(upload, layout):
        results = decisions.check_keys(pitches(batch), products=products, lookups=lookups)
        rows += len(batch)
        # Results repeat (one per deciding suppression): count them by identity, then their
        # kinds, rather than hash every row's result.
        by_id = dict(zip(map(id, results), results, strict=True))
        for key, count in Counter(map(id, results)).items():
            result = by_id[key]
            if result.suppressed:
                kinds[result.kind] += count
        problems += len(odd)
        for position, number in odd.items():
            if len(listed) < LISTED_PROBLEMS:
                listed.append(problem(number, len(batch[position]), columns))
    labels = dict(SuppressionReason.choices)
    by_reason = [(labels[kind], kinds[kind]) for kind in REASONS if kinds[kind]]
    return Summary(
        rows=rows,
        suppressed=sum(kinds.values()),
        by_reason=by_reason,
        problems=problems,
        listed=listed,
    )
