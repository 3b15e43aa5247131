"""
Checking a call list against the suppressions: a CSV comes in with any of the columns `email`,
`phone`, `company_domain` (and optionally `product`), and goes back out with `suppressed`,
`reason`, `until` and `problem` added; or it is summarised (rows, suppressed, by reason, rows
with problems) for the page.

Rows keep their order and their cells as uploaded. A row whose number of values differs from the
header's keeps them all and says so in `problem`: a short row's missing cells are read and
written as blank, so that the added columns stay under their names; a long row's first values
are checked under the header's columns and its extra values follow `problem`, unchecked.

validate() reads the whole file before anything is answered or stored, so a bad file gets a
clear message instead of half a download: its text encoding (crm_site.textfiles: UTF-8, with
or without a byte order mark, UTF-16 with its byte order mark, or Windows-1252), then, in one
pass, its CSV, its header (a usable column, at most DEBRIEF_CALLLIST_MAX_COLUMNS), its rows (at
most DEBRIEF_CALLLIST_MAX_ROWS, each at most RECORD_BYTES long and DEBRIEF_CALLLIST_MAX_COLUMNS
values wide, checked before a row is built) and where it can be cut into chunks: byte offsets
at record boundaries (a quoted line break stays inside its record), every
DEBRIEF_CALLLIST_CHUNK_ROWS rows or CHUNK_BYTES bytes, blank lines included. A file of at most
DEBRIEF_CALLLIST_INLINE_ROWS rows is then checked at once, in batches of BATCH_ROWS rows, each
set-based with a fixed number of queries; a larger one becomes a job whose chunks are checked by
workers (suppressions.jobs) through the same batches, each chunk reading only its own bytes,
under the same limits a row.
"""

import codecs
import csv
import io
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import itemgetter

from django.conf import settings

from crm_site import textfiles
from crm_site.csvsafe import FORMULA_STARTS, safe_cell
from customers.normalize import normalize_domain, normalize_email, normalize_phone
from suppressions import decisions
from suppressions.models import SuppressionReason

# A chunk also ends at this many bytes, so that a worker holds at most this much of the file
# (wide rows would otherwise make a chunk of DEBRIEF_CALLLIST_CHUNK_ROWS rows large).
CHUNK_BYTES = 8 * 1024 * 1024
# The header is read before anything else; a first line longer than this is not a header.
HEADER_CHARS = 1024 * 1024
# A record (a row, with any line breaks inside its quotes) longer than this is refused, read a
# line piece at a time so that it is never held whole: csv.reader builds a row's values all at
# once, and a 9 MB row of short values grew a process by 213 MB. A contact's row is far shorter;
# a quote that is never closed makes the rest of the file one record and ends here too.
RECORD_BYTES = 64 * 1024
# Lines are read at most this many characters at a time (at least as many bytes): a piece that
# stops inside a "\r\n" belongs to a record over RECORD_BYTES, so it never changes a parse.
LINE_CHARS = RECORD_BYTES + 2
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


def max_bytes() -> int:
    return settings.DEBRIEF_CALLLIST_MAX_BYTES


def max_rows() -> int:
    return settings.DEBRIEF_CALLLIST_MAX_ROWS


def max_columns() -> int:
    return settings.DEBRIEF_CALLLIST_MAX_COLUMNS


def inline_rows() -> int:
    return settings.DEBRIEF_CALLLIST_INLINE_ROWS


def size_text(size: int) -> str:
    """A size as the messages say it: 2.0 KB, 4.5 MB, 128 MB."""
    if size < 1024 * 1024:
        return f"{size / 1024:,.1f} KB"
    megabytes = size / 1024 / 1024
    return f"{megabytes:,.1f} MB" if megabytes < 10 else f"{megabytes:,.0f} MB"


@dataclass(frozen=True)
class Chunk:
    """A run of whole records: bytes [start, end) of the file, from record `first_row` on."""

    start: int
    end: int
    first_row: int  # as a spreadsheet numbers it: the header is row 1
    rows: int  # non-empty rows


@dataclass(frozen=True)
class Layout:
    header: list[str]
    columns: dict[str, int]  # known column name -> index
    rows: int
    encoding: str = "utf-8-sig"
    chunks: tuple[Chunk, ...] = ()
    # How a chunk's bytes decode on their own: a UTF-16 file's byte order is read from its
    # mark, which only the file's first bytes hold.
    chunk_encoding: str = "utf-8"


@contextmanager
def _text(upload, encoding: str) -> Iterator[io.TextIOWrapper]:
    """The upload as text, detached afterwards so that the file stays open for a second read."""
    upload.seek(0)
    wrapper = io.TextIOWrapper(upload.file, encoding=encoding, newline="")
    try:
        yield wrapper
    finally:
        wrapper.detach()


_NOT_TEXT = {
    "empty": "The file is empty.",
    "binary": "This is not a CSV file (it contains binary data).",
    "encoding": "The file is not text we can read (it is neither UTF-8, UTF-16 nor "
    "Windows-1252). Save it as “CSV UTF-8” and upload it again.",
}


def validate(upload, *, chunk_rows: int | None = None) -> Layout:
    """
    Read the whole upload and say what is wrong with it, or how it is laid out: its header,
    known columns, non-empty rows, encoding and chunks of at most `chunk_rows` rows
    (DEBRIEF_CALLLIST_CHUNK_ROWS by default).
    """
    limit = max_bytes()
    if upload.size == 0:
        raise CallListError("The file is empty.")
    if upload.size > limit:
        raise CallListError(
            f"The file is {size_text(upload.size)}; the limit is {size_text(limit)} "
            f"({max_rows():,} rows). Split it and check each part."
        )
    try:
        encoding = textfiles.detect(upload.file)
    except textfiles.NotText as exc:
        raise CallListError(_NOT_TEXT[exc.reason]) from None
    per_chunk = chunk_rows or settings.DEBRIEF_CALLLIST_CHUNK_ROWS
    try:
        with _text(upload, encoding) as text:
            return _inspect(text, encoding, per_chunk, _start_bytes(upload, encoding))
    except csv.Error as exc:
        raise CallListError(f"This is not a readable CSV file: {exc}.") from exc


def _start_bytes(upload, encoding: str) -> tuple[int, str]:
    """The byte order mark's length, and how the rest of the file decodes in pieces."""
    upload.seek(0)
    start = upload.read(3)
    upload.seek(0)
    if encoding == "utf-16":
        return 2, "utf-16-le" if start.startswith(codecs.BOM_UTF16_LE) else "utf-16-be"
    if encoding == "utf-8-sig":
        return (3 if start.startswith(codecs.BOM_UTF8) else 0), "utf-8"
    return 0, encoding


def _inspect(text, encoding: str, per_chunk: int, start: tuple[int, str]) -> Layout:
    """
    One pass over the text: the header, the rows and the chunk boundaries. The byte offset
    after each line is that line's length in the file's own encoding added up; csv.reader takes
    exactly one record's lines for each row it yields, so the offset after a row is a record
    boundary.
    """
    position, chunk_encoding = start
    if chunk_encoding == "cp1252":
        size = len
    elif chunk_encoding == "utf-8":

        def size(line: str) -> int:
            # An ASCII line (most are) is as many bytes as characters; str knows it is ASCII.
            return len(line) if line.isascii() else len(line.encode("utf-8"))
    else:

        def size(line: str) -> int:
            return len(line.encode(chunk_encoding))

    first = text.readline(HEADER_CHARS)
    if len(first) >= HEADER_CHARS and not first.endswith(("\n", "\r")):
        raise CallListError(
            f"The first line is longer than {HEADER_CHARS // 1024 // 1024} MB, so it cannot be "
            "a header. The first line must name the columns: email, phone or company_domain."
        )
    reader = _Rows(text, first_row=1, head=first, size=size, position=position + size(first))
    header = next(reader, None)
    if header is None:
        raise CallListError("The file is empty.")
    limit, per_file = max_columns(), max_rows()
    if len(header) > limit:
        raise CallListError(
            f"The header has {len(header):,} columns; at most {limit:,} are read. Keep the "
            "columns the campaign needs (email, phone, company_domain, product and a few of "
            "your own) and upload it again."
        )
    columns = _columns(header)
    rows = chunk_rows = 0
    chunks: list[Chunk] = []
    chunk_start, chunk_first = reader.position, 2
    for number, row in enumerate(reader, 2):
        position = reader.position
        if not any(map(str.strip, row)):
            if not chunk_rows:
                # Nothing to check yet: the chunk starts after the blank row.
                chunk_start, chunk_first = position, number + 1
            elif position - chunk_start >= CHUNK_BYTES:
                chunks.append(Chunk(chunk_start, position, chunk_first, chunk_rows))
                chunk_start, chunk_first, chunk_rows = position, number + 1, 0
            continue
        rows += 1
        if rows > per_file:
            raise CallListError(
                f"The file has more than {per_file:,} rows. Split it and check each part."
            )
        chunk_rows += 1
        if chunk_rows >= per_chunk or position - chunk_start >= CHUNK_BYTES:
            chunks.append(Chunk(chunk_start, position, chunk_first, chunk_rows))
            chunk_start, chunk_first, chunk_rows = position, number + 1, 0
    position = reader.position
    if chunk_rows:
        chunks.append(Chunk(chunk_start, position, chunk_first, chunk_rows))
    return Layout(header, columns, rows, encoding, tuple(chunks), chunk_encoding)


class _Rows:
    """
    The records of `text` as csv.reader reads them (strict), numbered from `first_row`, with
    the two limits that keep a row small checked before it is built: RECORD_BYTES (lines are
    read LINE_CHARS at a time and added up) and DEBRIEF_CALLLIST_MAX_COLUMNS values a row
    (the header's own width is the caller's to check). `position` is the byte offset after the
    last record given, each line sized by `size` in the file's encoding.
    """

    def __init__(self, text, *, first_row: int, head: str = "", size=len, position: int = 0):
        self.text, self.size, self.head = text, size, head
        self.position = position
        self.number = first_row  # the record being read
        self.record = 0  # its bytes so far
        self.width = max_columns()
        self.reader = csv.reader(self._lines(), strict=True)

    def _lines(self) -> Iterator[str]:
        if self.head:
            # The header's first line, read (and sized) already by the caller.
            yield self.head
        readline, size = self.text.readline, self.size
        while line := readline(LINE_CHARS):
            length = size(line)
            self.position += length
            self.record += length
            if self.record > RECORD_BYTES:
                raise CallListError(
                    f"Row {self.number:,} is longer than {size_text(RECORD_BYTES)}, which no "
                    "contact's row needs. Check that every quote in it is closed (a value that "
                    "opens a quote and never closes it runs on to the end of the file), or "
                    "shorten its values, and upload the file again."
                )
            yield line

    def __iter__(self) -> Iterator[list[str]]:
        return self

    def __next__(self) -> list[str]:
        row = next(self.reader)
        if len(row) > self.width and self.number > 1:
            raise CallListError(
                f"Row {self.number:,} has {len(row):,} values; at most {self.width:,} are "
                "read. Check that it is a contact's row (a value with commas in it needs "
                "quotes) and upload the file again."
            )
        self.number += 1
        self.record = 0
        return row


def _columns(header: list[str]) -> dict[str, int]:
    """The header's known columns, or the refusal naming (briefly) what it holds instead."""
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
    return columns


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


def _records(upload, layout: Layout) -> Iterator[list[str]]:
    """The upload's records after its header."""
    with _text(upload, layout.encoding) as text:
        reader = _Rows(text, first_row=1)
        next(reader, None)
        yield from reader


def chunk_records(data: bytes, layout: Layout, *, first_row: int = 2) -> Iterator[list[str]]:
    """
    The records of one chunk's bytes (Layout.chunks), which start and end at record ends; held
    to validate()'s limits a row, like the whole file's.
    """
    text = io.StringIO(data.decode(layout.chunk_encoding), newline="")
    return _Rows(text, first_row=first_row)


def _batches(
    records: Iterable[list[str]], layout: Layout, first_row: int = 2
) -> Iterator[tuple[list[tuple[str, ...]], dict[int, int]]]:
    """
    The non-empty rows in batches, each with its odd rows (more or fewer values than the
    header) as {position in the batch: row number}; the first record is row `first_row`.
    """
    columns = len(layout.header)
    # Rows as tuples: the garbage collector stops tracking those, not lists (see
    # decisions.check_keys).
    batch: list[tuple[str, ...]] = []
    odd: dict[int, int] = {}
    cells = 0
    for number, row in enumerate(records, first_row):
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


_LINE = csv.writer(_Line()).writerow


def header_line(layout: Layout) -> str:
    """The checked file's first line: the user's header (escaped) and the added columns."""
    return _LINE([safe_cell(h) for h in layout.header] + list(ADDED_COLUMNS))


def annotate(upload, layout: Layout) -> Iterator[str]:
    """
    The checked CSV, one batch of lines at a time: the original cells (escaped) and the four
    new ones. Holds one batch, never the file.
    """
    yield header_line(layout)
    yield from annotated(_records(upload, layout), layout)


def annotated(
    records: Iterable[list[str]],
    layout: Layout,
    *,
    first_row: int = 2,
    tally: "Tally | None" = None,
    lookups: decisions.Lookups | None = None,
) -> Iterator[str]:
    """
    The checked lines of `records` (no header), one string per batch; what they hold is counted
    in `tally` as they go. A chunk passes its first row's number and the worker's `lookups`.
    """
    line = _LINE
    products = decisions.product_index()
    lookups = lookups if lookups is not None else decisions.Lookups()
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
        if tally is not None:
            tally.add(batch, odd, results, columns)
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

    for batch, odd in _batches(records, layout, first_row):
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


@dataclass
class Tally:
    """
    What checking finds, counted batch by batch: rows, suppressed rows by reason, rows with
    problems and the first LISTED_PROBLEMS of those. A job's chunks each keep one (as_dict) and
    the job adds them up in chunk order (merge).
    """

    rows: int = 0
    kinds: Counter = field(default_factory=Counter)
    problems: int = 0
    listed: list[str] = field(default_factory=list)

    def add(self, batch, odd: dict[int, int], results, columns: int) -> None:
        self.rows += len(batch)
        # Results repeat (one per deciding suppression): count them by identity, then their
        # kinds, rather than hash every row's result.
        by_id = dict(zip(map(id, results), results, strict=True))
        for key, count in Counter(map(id, results)).items():
            result = by_id[key]
            if result.suppressed:
                self.kinds[result.kind] += count
        self.problems += len(odd)
        for position, number in odd.items():
            if len(self.listed) < LISTED_PROBLEMS:
                self.listed.append(problem(number, len(batch[position]), columns))

    def as_dict(self) -> dict:
        return {
            "rows": self.rows,
            "kinds": dict(self.kinds),
            "problems": self.problems,
            "listed": self.listed,
        }

    @classmethod
    def merge(cls, parts: Iterable[dict]) -> "Tally":
        total = cls()
        for part in parts:
            total.rows += part.get("rows", 0)
            total.kinds.update(part.get("kinds", {}))
            total.problems += part.get("problems", 0)
            total.listed.extend(part.get("listed", [])[: LISTED_PROBLEMS - len(total.listed)])
        return total

    def summary(self) -> Summary:
        labels = dict(SuppressionReason.choices)
        by_reason = [(labels[kind], self.kinds[kind]) for kind in REASONS if self.kinds[kind]]
        return Summary(
            rows=self.rows,
            suppressed=sum(self.kinds.values()),
            by_reason=by_reason,
            problems=self.problems,
            listed=list(self.listed),
        )


def summarise(upload, layout: Layout) -> Summary:
    """
    What checking the file finds, for the page: the same batches and queries as annotate(),
    counted instead of written.
    """
    products = decisions.product_index()
    lookups = decisions.Lookups()
    pitches = _pitches(layout)
    columns = len(layout.header)
    tally = Tally()
    for batch, odd in _batches(_records(upload, layout), layout):
        results = decisions.check_keys(pitches(batch), products=products, lookups=lookups)
        tally.add(batch, odd, results, columns)
    return tally.summary()
