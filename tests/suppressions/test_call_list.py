import codecs
import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_site.csvsafe import safe_cell
from suppressions import calllist, decisions
from tests.factories import CompanyFactory, ContactFactory, ProductFactory
from tests.suppressions.test_suppression import closed  # noqa: F401  (shared helper)

pytestmark = pytest.mark.django_db
URL = reverse("suppressions:call_list_check")


def upload(text: str | bytes, name="list.csv"):
    data = text.encode("utf-8") if isinstance(text, str) else text
    return SimpleUploadedFile(name, data, content_type="text/csv")


def rows_of(response):
    body = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.reader(io.StringIO(body)))


@pytest.mark.smoke
def test_page_explains_the_format(rep_client):
    response = rep_client.get(URL)
    assert response.status_code == 200 and b"company_domain" in response.content


def test_anonymous_is_sent_to_login(client):
    assert client.get(URL).status_code == 302


def test_annotates_bom_empty_lines_and_quoted_commas(rep_client, blocked):
    text = (
        "\ufeffname,email,phone\r\n"
        '"Dana, the buyer",DANA@Brightwater.example,\r\n'
        "\r\n"
        'Someone,other@nowhere.example,"+44 (0)20 7946 0999"\r\n'
        ",,+44 20 7946 0018\r\n"
    )
    response = rep_client.post(URL, {"file": upload(text)})
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="list-checked.csv"'
    rows = rows_of(response)
    assert rows[0] == ["name", "email", "phone", "suppressed", "reason", "until", "problem"]
    assert rows[1][:3] == ["Dana, the buyer", "DANA@Brightwater.example", ""]
    assert rows[1][3] == "yes" and "do-not-contact" in rows[1][4] and rows[1][5] == "indefinite"
    assert rows[2][3] == "no" and rows[2][4] == "" and rows[2][5] == "" and rows[2][6] == ""
    assert rows[3][3] == "yes"  # matched by the normalised phone number
    assert len(rows) == 4  # the empty line is dropped


def test_product_column_limits_the_match_to_its_scope(rep_client, rep, lost_set):
    from reflections.models import Outcome
    from tests.reflections.conftest import lost_answers

    company = CompanyFactory(domain="acme.example")
    contact = ContactFactory(company=company, email="buyer@acme.example")
    product = ProductFactory(name="Card Terminal")
    closed(rep, company, contact, product, Outcome.LOST, lost_answers(lost_set))
    ProductFactory(name="Dashboards")
    text = (
        "email,product\n"
        "buyer@acme.example,card terminal\n"
        "buyer@acme.example,Dashboards\n"
        "buyer@acme.example,Not A Product\n"
    )
    rows = rows_of(rep_client.post(URL, {"file": upload(text)}))
    # An unknown product name is treated like no product: any suppression counts.
    assert [r[2] for r in rows[1:]] == ["yes", "no", "yes"]
    assert rows[1][3] != ""


def test_formula_cells_are_escaped(rep_client, blocked):
    text = 'email,note\n=HYPERLINK("x"),+1+cmd|A0\n-2+3,@SUM(A1)\n+44 20 7946 0018,-12\n'
    rows = rows_of(rep_client.post(URL, {"file": upload(text)}))
    assert rows[1][:2] == ['\'=HYPERLINK("x")', "'+1+cmd|A0"]
    assert rows[2][:2] == ["'-2+3", "'@SUM(A1)"]
    # Phone numbers and plain numbers come back as they were uploaded.
    assert rows[3][:2] == ["+44 20 7946 0018", "-12"]
    assert safe_cell("\tcmd") == "'\tcmd" and safe_cell("ok") == "ok"


@pytest.mark.parametrize(
    "content, message",
    [
        ("name,city\nDana,Leeds\n", b"No usable column"),
        # Neither UTF-8 nor Windows-1252 (0x81 is not a character there).
        (b"email\n\xe9l\xe8ve@example.com\x81\n", b"neither UTF-8, UTF-16 nor Windows-1252"),
        ("email\nx@y.example".encode("utf-16-le"), b"not a CSV file"),  # UTF-16, no BOM
        (b"PK\x03\x04\x00\x00binary", b"not a CSV file"),
        ("", b"The submitted file is empty"),
        ('email\n"unterminated\n', b"not a readable CSV"),
    ],
    ids=["no-usable-column", "not-text", "utf16-without-bom", "binary", "empty", "broken-quotes"],
)
def test_bad_files_get_a_clear_message(rep_client, content, message, settings):
    response = rep_client.post(URL, {"file": upload(content)})
    assert response.status_code == 400
    assert message in response.content, response.content[-3000:]


@pytest.mark.parametrize(
    "encode",
    [
        lambda text: text.encode("utf-8"),
        lambda text: codecs.BOM_UTF8 + text.encode("utf-8"),
        lambda text: text.encode("utf-16"),  # with its byte order mark, as "Unicode text"
        lambda text: codecs.BOM_UTF16_BE + text.encode("utf-16-be"),
        lambda text: text.encode("cp1252"),
    ],
    ids=["utf8", "utf8-bom", "utf16-le-bom", "utf16-be-bom", "windows-1252"],
)
def test_spreadsheet_encodings_are_read(rep_client, blocked, encode):
    text = "email,name\r\ndana@brightwater.example,Dana Müller\r\nfree@x.example,Zoë\r\n"
    rows = rows_of(rep_client.post(URL, {"file": upload(encode(text))}))
    assert rows[1][:3] == ["dana@brightwater.example", "Dana Müller", "yes"]
    assert rows[2][:3] == ["free@x.example", "Zoë", "no"]


def test_a_header_of_many_columns_is_named_briefly(rep_client):
    header = ",".join(f"column{i}" for i in range(1_000))
    response = rep_client.post(URL, {"file": upload(header + "\n" + "x," * 999 + "x\n")})
    assert response.status_code == 400
    body = response.content.decode()
    assert "column0, column1, column2, column3, column4 and 995 more" in body
    assert "column5" not in body and len(body) < 20_000


def test_too_many_rows_is_refused(rep_client, settings):
    settings.DEBRIEF_CALLLIST_MAX_ROWS = 50
    text = "email\n" + "".join(f"p{i}@x.example\n" for i in range(51))
    response = rep_client.post(URL, {"file": upload(text)})
    assert response.status_code == 400 and b"more than 50 rows" in response.content


def test_an_oversized_upload_is_refused_before_reading(rep_client, settings):
    settings.DEBRIEF_CALLLIST_MAX_BYTES = 1024
    text = "email\n" + "x@y.example\n" * 10_000
    response = rep_client.post(URL, {"file": upload(text)})
    assert response.status_code == 413 and b"larger than" in response.content


def test_100k_rows_are_checked_set_based(rep_client, blocked):
    rows = ["email,phone,company_domain"]
    rows += [f"person{i}@list.example,+4411{i:08d},d{i % 500}.example" for i in range(99_999)]
    rows.append("dana@brightwater.example,,")
    response = rep_client.post(URL, {"file": upload("\n".join(rows))})
    assert response.status_code == 200
    with CaptureQueriesContext(connection) as queries:
        out = rows_of(response)
    assert len(out) == 100_001
    assert out[-1][3] == "yes" and out[1][3] == "no"
    batches = 100_000 // calllist.BATCH_ROWS
    # One product lookup, then at most four queries per batch of 5,000 rows: never per row.
    assert len(queries) <= 1 + 4 * batches, len(queries)


def test_short_rows_read_missing_cells_as_blank_and_say_so(rep_client, blocked):
    text = (
        "name,email,phone,company_domain\n"
        "Only a name\n"
        "Dana,dana@brightwater.example\n"
        ",,020 7946 0018\n"
    )
    rows = rows_of(rep_client.post(URL, {"file": upload(text)}))
    # Padded to the header, so that the added cells sit under their names.
    assert rows[1][:7] == ["Only a name", "", "", "", "no", "", ""]
    assert rows[1][7] == (
        "Row 2 has 1 value but the header has 4 columns: the missing ones were read as blank."
    )
    assert rows[2][:5] == ["Dana", "dana@brightwater.example", "", "", "yes"]
    assert rows[2][7].startswith("Row 3 has 2 values but the header has 4 columns")
    assert rows[3][:5] == ["", "", "020 7946 0018", "", "yes"]
    assert rows[2][5] == rows[3][5]  # the same suppression, described the same way
    assert {len(row) for row in rows} == {8}


def test_a_row_with_extra_values_keeps_them_after_the_added_columns(rep_client, blocked):
    text = (
        "name,email,phone\n"
        'Dana,dana@brightwater.example,"+44 20 7946 0018"\n'
        "Dana, the buyer,dana@brightwater.example,+44 20 7946 0018,=cmd\n"  # unquoted comma
        "Ann,ann@nowhere.example,\n"
    )
    rows = rows_of(rep_client.post(URL, {"file": upload(text)}))
    assert rows[0] == ["name", "email", "phone", *calllist.ADDED_COLUMNS]
    assert rows[1][3] == "yes" and rows[1][6] == ""
    # The user's columns as uploaded, the check of those three, the note, then the extras
    # (formula-guarded like any cell).
    assert rows[2][:4] == ["Dana", " the buyer", "dana@brightwater.example", "no"]
    assert rows[2][6] == (
        "Row 3 has 5 values but the header has 3 columns: only the first 3 were checked, and "
        "the 2 extra values are kept after the problem column. Check that each value is under "
        "the right name (a comma inside a value that is not in quotes splits it in two)."
    )
    assert rows[2][7:] == ["+44 20 7946 0018", "'=cmd"]
    assert rows[3] == ["Ann", "ann@nowhere.example", "", "no", "", "", ""]
    assert len(rows) == 4  # every row, in order


def test_extra_values_are_never_read_as_a_column_the_header_lacks(rep_client, blocked):
    """A suppressed contact's phone or domain among a long row's extras decides nothing."""
    text = (
        "name,email\n"
        "Ann,ann@nowhere.example,+44 20 7946 0018\n"  # Dana's phone, as an extra value
        "Ann,ann@nowhere.example,brightwater.example\n"
    )
    rows = rows_of(rep_client.post(URL, {"file": upload(text)}))
    assert [row[2] for row in rows[1:]] == ["no", "no"]
    summary = summary_of(rep_client, text).content.decode()
    assert '<dt>Must not be called</dt><dd class="stat">0</dd>' in summary


def test_row_numbers_count_blank_lines_and_quoted_line_breaks_as_a_spreadsheet_does(
    rep_client, blocked
):
    text = 'email,note\n\n"a@x.example","two\nlines"\nb@x.example\n'
    rows = rows_of(rep_client.post(URL, {"file": upload(text)}))
    assert rows[2][:2] == ["b@x.example", ""]
    assert rows[2][-1].startswith("Row 4 has 1 value")  # header 1, blank 2, quoted row 3


def summary_of(client, text: str, **extra):
    return client.post(URL + "?summary=1", {"file": upload(text)}, **extra)


def test_check_shows_a_summary_by_reason_and_names_rows_with_problems(
    rep_client, rep, blocked, lost_set
):
    from reflections.models import Outcome
    from tests.reflections.conftest import lost_answers

    northwind = CompanyFactory(domain="northwind.example")
    buyer = ContactFactory(company=northwind, email="buyer@northwind.example")
    closed(rep, northwind, buyer, ProductFactory(), Outcome.LOST, lost_answers(lost_set))
    text = (
        "name,email,company_domain\n"
        "Dana,dana@brightwater.example,\n"  # do not contact
        "Buyer,buyer@northwind.example,\n"  # declined
        "Buyer again,BUYER@northwind.example,\n"  # declined
        "Free,free@nowhere.example,\n"
        "Too,many,values,here\n"  # row 6: four values under three columns
    )
    with CaptureQueriesContext(connection) as queries:
        response = summary_of(rep_client, text)
    assert response.status_code == 200
    summary = response.context["summary"]
    assert (summary.rows, summary.suppressed, summary.clear, summary.problems) == (5, 3, 2, 1)
    assert summary.by_reason == [("Do not contact", 1), ("Declined", 2)]
    assert summary.listed == [calllist.problem(6, 4, 3)]
    page = response.content.decode()
    assert "What the check found in list.csv" in page
    assert "Do not contact: 1" in page and "Declined: 2" in page
    assert "Row 6 has 4 values but the header has 3 columns" in page
    assert "choose the file again" in page  # without htmx the page cannot keep the file
    # Session and user, then the download's batched reads: products, people, domains,
    # suppressions, their deals; then the user's recent long lists. None per row.
    assert len(queries) == 8, [q["sql"] for q in queries.captured_queries]


def test_check_through_htmx_answers_the_summary_only(rep_client, blocked):
    response = summary_of(rep_client, "email\ndana@brightwater.example\n", HTTP_HX_REQUEST="true")
    page = response.content.decode()
    assert response.status_code == 200
    assert page.lstrip().startswith('<div id="call-list-result">')
    assert 'form="call-list-form"' in page and "Download the checked file" in page
    assert "<h1>" not in page


def test_a_refused_file_through_htmx_replaces_the_form_with_its_error(rep_client):
    response = summary_of(rep_client, "name,city\nDana,Leeds\n", HTTP_HX_REQUEST="true")
    assert response.status_code == 422  # htmx swaps it
    assert response["HX-Retarget"] == "#call-list-check"
    assert response["HX-Reswap"] == "outerHTML"
    page = response.content.decode()
    assert page.lstrip().startswith('<div id="call-list-check">')
    assert "No usable column" in page and "What the check found" not in page


def test_summary_lists_at_most_twenty_problems(rep_client, blocked):
    text = "email,name\n" + "".join(f"p{i}@x.example\n" for i in range(30))
    summary = summary_of(rep_client, text).context["summary"]
    assert summary.problems == 30 and len(summary.listed) == calllist.LISTED_PROBLEMS
    assert summary.listed[0].startswith("Row 2 ") and summary.listed[-1].startswith("Row 21 ")


def test_the_answer_streams_one_batch_at_a_time(rep_client, blocked, monkeypatch):
    monkeypatch.setattr(calllist, "BATCH_ROWS", 2)
    text = "email\n" + "".join(f"p{i}@x.example\n" for i in range(4)) + "dana@brightwater.example\n"
    response = rep_client.post(URL, {"file": upload(text)})
    chunks = [chunk.decode() for chunk in response.streaming_content]
    assert len(chunks) == 4  # the header, then batches of 2, 2 and 1 rows
    assert chunks[1].count("\n") == 2 and chunks[3].startswith("dana@brightwater.example,yes,")


CELL_CHARS = " ,\"'\n\r=+-@\tab€"


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=st.lists(
        st.tuples(
            st.text(alphabet=CELL_CHARS, max_size=6),
            st.sampled_from(["dana@brightwater.example", "x@nowhere.example", "=1+2", ""]),
            st.text(alphabet=CELL_CHARS, max_size=6),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_the_answer_is_what_csv_writer_writes(rep_client, blocked, rows):
    """Each line is the row's escaped cells and the three new ones, quoted as csv quotes them."""
    given_csv = io.StringIO()
    csv.writer(given_csv).writerows([("name", "email", "note"), *rows])
    response = rep_client.post(URL, {"file": upload(given_csv.getvalue())})
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()
    kept = [list(row) for row in rows if any(cell.strip() for cell in row)]
    pitches = [decisions.Pitch(email=email.strip().lower()) for _, email, _ in kept]
    expected = io.StringIO()
    writer = csv.writer(expected)
    writer.writerow(["name", "email", "note", *calllist.ADDED_COLUMNS])
    for row, result in zip(kept, decisions.check_many(pitches), strict=True):
        until = ""
        if result.suppressed:
            until = result.until.isoformat() if result.until else "indefinite"
        writer.writerow(
            [safe_cell(cell) for cell in row]
            + ["yes" if result.suppressed else "no", safe_cell(result.reason), until, ""]
        )
    assert body == expected.getvalue()


def test_batches_are_bounded_by_cells_not_only_rows(rep_client, blocked, monkeypatch):
    from suppressions import decisions as suppression_module

    monkeypatch.setattr(calllist, "BATCH_CELLS", 100)
    sizes = []
    real = suppression_module.check_keys

    def spy(pitches, **kwargs):
        sizes.append(len(pitches))
        return real(pitches, **kwargs)

    monkeypatch.setattr(suppression_module, "check_keys", spy)
    header = "email," + ",".join(f"c{i}" for i in range(49))
    rows = [f"p{n}@x.example," + ",".join("v" for _ in range(49)) for n in range(10)]
    result = rows_of(rep_client.post(URL, {"file": upload("\n".join([header, *rows]) + "\n")}))
    assert len(result) == 11  # every row comes back, in order
    assert [r[0] for r in result[1:]] == [f"p{n}@x.example" for n in range(10)]
    assert max(sizes) <= 2 and sum(sizes) == 10  # 50 cells a row: two rows a batch


def test_summary_counts_across_batches_as_the_download_writes(rep_client, blocked, monkeypatch):
    monkeypatch.setattr(calllist, "BATCH_ROWS", 2)
    text = (
        "email,name\n"
        "a@x.example,A\n"
        "dana@brightwater.example,Dana\n"
        "b@x.example\n"  # row 4, the first of the second batch
        "dana@brightwater.example,Dana,again\n"  # row 5
        "c@x.example,C\n"
    )
    summary = summary_of(rep_client, text).context["summary"]
    assert (summary.rows, summary.suppressed, summary.problems) == (5, 2, 2)
    assert summary.by_reason == [("Do not contact", 2)]
    assert [note[:6] for note in summary.listed] == ["Row 4 ", "Row 5 "]
    rows = rows_of(rep_client.post(URL, {"file": upload(text)}))
    assert [row[2] for row in rows[1:]] == ["no", "yes", "no", "yes", "no"]
    assert [row[5][:6] for row in rows[1:]] == ["", "", "Row 4 ", "Row 5 ", ""]
