"""
Checking a call list against the suppressions: a CSV comes in with any of the columns `email`,
`phone`, `company_domain` (and optionally `product`), and goes back out, streamed, with
`suppressed`, `reason` and `until` added.

The file is read twice: once to validate all of it (UTF-8, CSV, a usable column, at most
MAX_ROWS rows) before a single byte is answered, so a bad file gets a clear message instead of
half a download; then again in batches of BATCH_ROWS rows, each checked set-based with a fixed
number of queries. Nothing is stored.
"""

import codecs
import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from customers import suppression
from customers.normalize import normalize_domain, normalize_email, normalize_phone

MAX_ROWS = 100_000
MAX_BYTES = 32 * 1024 * 1024
BATCH_ROWS = 5_000
KEY_COLUMNS = ("email", "phone", "company_domain")
ADDED_COLUMNS = ("suppressed", "reason", "until")
# Spreadsheet programs run cells that start with these as formulas (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class CallListError(ValueError):
    """The file cannot be checked; the message says why and what to do."""


@dataclass(frozen=True)
class Layout:
    header: list[str]
    columns: dict[str, int]  # known column name -> index
    rows: int


def escape_cell(value: str) -> str:
    """Neutralise a cell a spreadsheet would run as a formula."""
    if value and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


@contextmanager
def _text(upload) -> Iterator[io.TextIOWrapper]:
    """The upload as text, detached afterwards so that the file stays open for a second read."""
    upload.seek(0)
    wrapper = io.TextIOWrapper(upload.file, encoding="utf-8-sig", newline="")
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
    upload.seek(0)
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    for chunk in iter(lambda: upload.read(256 * 1024), b""):
        if b"\x00" in chunk:
            raise CallListError("This is not a CSV file (it contains binary data).")
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            raise CallListError(
                f"The file is not UTF-8 text (a bad byte near byte {offset + exc.start:,}). "
                "Save it as “CSV UTF-8” and upload it again."
            ) from exc
        offset += len(chunk)
    try:
        decoder.decode(b"", final=True)  # a file that ends inside a character
    except UnicodeDecodeError as exc:
        raise CallListError(
            "The file is not UTF-8 text (it ends in the middle of a character). "
            "Save it as “CSV UTF-8” and upload it again."
        ) from exc
    try:
        with _text(upload) as text:
            return _layout(csv.reader(text, strict=True))
    except csv.Error as exc:
        raise CallListError(f"This is not a readable CSV file: {exc}.") from exc


def _layout(reader) -> Layout:
    """The header's known columns and the number of non-empty rows."""
    header = next(reader, None)
    if header is None:
        raise CallListError("The file is empty.")
    names = [name.strip().lower() for name in header]
    columns = {name: i for i, name in enumerate(names) if name in (*KEY_COLUMNS, "product")}
    if not any(name in columns for name in KEY_COLUMNS):
        raise CallListError(
            "No usable column. The first line must name at least one of: "
            + ", ".join(KEY_COLUMNS)
            + f" (found: {', '.join(h for h in header if h) or 'nothing'})."
        )
    rows = 0
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        rows += 1
        if rows > MAX_ROWS:
            raise CallListError(
                f"The file has more than {MAX_ROWS:,} rows. Split it and check each part."
            )
    return Layout(header=header, columns=columns, rows=rows)


class _Line:
    """csv.writer target that hands back each line instead of storing it."""

    def write(self, value: str) -> str:
        return value


def _pitch(row: list[str], columns: dict[str, int]) -> suppression.Pitch:
    def cell(name: str) -> str:
        index = columns.get(name)
        return row[index] if index is not None and index < len(row) else ""

    return suppression.Pitch(
        email=normalize_email(cell("email")),
        phone=normalize_phone(cell("phone")),
        domain=normalize_domain(cell("company_domain")),
        product=cell("product").strip(),
    )


def annotate(upload, layout: Layout) -> Iterator[str]:
    """The checked CSV, line by line: the original cells (escaped) and the three new ones."""
    writer = csv.writer(_Line())
    yield writer.writerow([escape_cell(h) for h in layout.header] + list(ADDED_COLUMNS))
    products = suppression.product_index()
    batch: list[list[str]] = []

    def flush() -> Iterator[str]:
        results = suppression.check_many(
            [_pitch(row, layout.columns) for row in batch], products=products
        )
        for row, result in zip(batch, results, strict=True):
            until = ""
            if result.suppressed:
                until = result.until.isoformat() if result.until else "indefinite"
            yield writer.writerow(
                [escape_cell(cell) for cell in row]
                + ["yes" if result.suppressed else "no", escape_cell(result.reason), until]
            )

    with _text(upload) as text:
        reader = csv.reader(text, strict=True)
        next(reader, None)
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            batch.append(row)
            if len(batch) >= BATCH_ROWS:
                yield from flush()
                batch = []
        if batch:
            yield from flush()
