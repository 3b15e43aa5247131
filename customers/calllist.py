"""
Checking a call list against the suppressions: a CSV comes in with any of the columns `email`,
`phone`, `company_domain` (and optionally `product`), and goes back out, streamed, with
`suppressed`, `reason` and `until` added.

The file is read twice: once to validate all of it (text in UTF-8, with or without a byte order
mark, UTF-16 with its byte order mark, or Windows-1252; CSV; a usable column; at most MAX_ROWS
rows) before a single byte is answered, so a bad file gets a clear message instead of
half a download; then again in batches of BATCH_ROWS rows, each checked set-based with a fixed
number of queries. Nothing is stored.
"""

import codecs
import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter

from crm_site.csvsafe import FORMULA_STARTS, safe_cell
from customers import suppression
from customers.normalize import normalize_domain, normalize_email, normalize_phone

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
ADDED_COLUMNS = ("suppressed", "reason", "until")


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
    # A missing column reads the blank cell that short rows are padded with.
    blank = len(layout.header)
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


def annotate(upload, layout: Layout) -> Iterator[str]:
    """
    The checked CSV, one batch of lines at a time: the original cells (escaped) and the three
    new ones. Holds one batch, never the file.
    """
    line = csv.writer(_Line()).writerow
    yield line([safe_cell(h) for h in layout.header] + list(ADDED_COLUMNS))
    products = suppression.product_index()
    lookups = suppression.Lookups()
    pitches = _pitches(layout)

    # The three added cells as CSV, after a row's own: results repeat (one per suppression
    # that decides rows) and their reasons are long, so each is written once. A field is
    # quoted on its own, so a row's line is its own cells' line with these in place of the end
    # of line. Keyed by id(); `kept` keeps those results alive, so that an id stays theirs.
    added: dict[int, str] = {}
    kept: list[suppression.Result] = []

    def tail(result: suppression.Result) -> str:
        if not result.suppressed:
            cells = ["no", "", ""]
        else:
            until = result.until.isoformat() if result.until else "indefinite"
            cells = ["yes", safe_cell(result.reason), until]
        return "," + line(cells)

    def checked(batch: list[tuple[str, ...]]) -> str:
        results = suppression.check_keys(pitches(batch), products=products, lookups=lookups)
        if len(added) > ADDED_CACHE:
            added.clear()
            kept.clear()
        lines = []
        for row, result in zip(batch, results, strict=True):
            cells = added.get(id(result))
            if cells is None:
                cells = added[id(result)] = tail(result)
                kept.append(result)
            # Only cells that may need it go through the guard: it runs for every cell.
            own = line([safe_cell(c) if c.startswith(FORMULA_STARTS) else c for c in row])
            lines.append(own[:-2] + cells)  # without its "\r\n"
        return "".join(lines)

    with _text(upload, layout.encoding) as text:
        reader = csv.reader(text, strict=True)
        next(reader, None)
        # Rows as tuples: the garbage collector stops tracking those, not lists (see
        # suppression.check_keys).
        batch: list[tuple[str, ...]] = []
        cells = 0
        for row in reader:
            if not any(map(str.strip, row)):
                continue
            batch.append(tuple(row))
            cells += len(row)
            # Rows of thousands of cells fill memory long before BATCH_ROWS rows do.
            if len(batch) >= BATCH_ROWS or cells >= BATCH_CELLS:
                yield checked(batch)
                batch, cells = [], 0
        if batch:
            yield checked(batch)
