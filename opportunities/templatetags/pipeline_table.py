"""
The pipeline's table rows, built in Python the way the admin builds its change list rows
(`items_for_result` in django.contrib.admin.templatetags.admin_list).

The pipeline is the page reps open most, and its 25 rows were most of its time as template
code: some forty template nodes and seven URL reversals each (8 ms a page here). Here a row is
one f-string: every value from the database goes through `esc` (the same html.escape that
Django's escape filter uses), URLs come from paths reversed once per page, and labels and dates
are formatted once per distinct value. The markup is what pipeline.html held before;
tests/opportunities/test_pipeline.py checks it, escaping included.
"""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache

from django import template
from django.conf import settings
from django.template.defaultfilters import date as date_filter
from django.template.defaultfilters import floatformat, truncatechars
from django.utils import formats as django_formats
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language

from crm_site.urlmakers import id_url
from crm_site.widgets import esc
from opportunities.models import OPEN_STAGES, Stage
from opportunities.selectors import CLOSE_AS

register = template.Library()

STAGE_BADGE = {Stage.WON: " badge-won", Stage.LOST: " badge-lost", Stage.NO_DECISION: " badge-warn"}
NEXT_STEP_CHARS = 60
# The cells other than the deal's own carry a class, and a label where a phone shows the rows as
# cards without the column headings (debrief.css).
NEXT_STEP_TD = '<td class="next-step" data-label="Next step">'


@lru_cache(maxsize=4096)
def _date_in(value, fmt: str, language: str | None) -> str:
    # The language is part of the key: month names are translated.
    return esc(date_filter(value, fmt))


_PLACES = {places: Decimal(1).scaleb(-places) for places in (0, 2)}


class _Formats:
    """Dates, amounts and stage labels as the page's template filters would draw them."""

    def __init__(self) -> None:
        self.language = get_language()
        self.stages = {stage.value: esc(stage.label) for stage in Stage}
        # Python's "," groups digits by three; another grouping goes through floatformat.
        grouping = django_formats.get_format("NUMBER_GROUPING")
        self.separators = (
            str.maketrans(
                {
                    ",": django_formats.get_format("THOUSAND_SEPARATOR"),
                    ".": django_formats.get_format("DECIMAL_SEPARATOR"),
                }
            )
            if grouping == 3
            else None
        )

    def date(self, value, fmt: str) -> str:
        return _date_in(value, fmt, self.language)

    def amount(self, value, places: int) -> str:
        """
        floatformat(value, "<places>g"), escaped: rounded half up, digits grouped. The filter
        took a third of the rows' time; this is the same arithmetic on the Decimal.
        """
        if self.separators is None or not isinstance(value, Decimal) or not value.is_finite():
            return esc(floatformat(value, f"{places}g"))
        try:
            rounded = value.quantize(_PLACES[places], rounding=ROUND_HALF_UP)
        except InvalidOperation:
            return esc(floatformat(value, f"{places}g"))
        shown = rounded or abs(rounded)  # floatformat never draws a minus sign on zero
        return esc(f"{shown:,.{places}f}".translate(self.separators))


@register.simple_tag
def pipeline_rows(deals: list[dict], show_owner: bool, flags: dict | None = None) -> SafeString:
    """
    The <tr>s of the pipeline table for these deals (rows of selectors.pipeline_for); `flags`
    are the suppression flags of the open ones (the pitch guard's flags_for_deals), by deal id.
    """
    flags = flags or {}
    today = timezone.localdate()
    reporting = settings.DEBRIEF_REPORTING_CURRENCY
    detail_url = id_url("opportunities:detail")
    close_urls = [(id_url("reflections:close", outcome), label) for outcome, label in CLOSE_AS]
    formats = _Formats()
    rows = []
    for deal in deals:
        stage, due = deal["stage"], deal["next_step_due"]
        is_open = stage in OPEN_STAGES
        overdue = is_open and due is not None and due < today
        title = esc(deal["title"])
        owner = esc(deal["owner__full_name"])
        amount = formats.amount(deal["amount"], 2)
        if deal["currency"] != reporting:
            # What the sort and the amount filters go by, under the amount as entered.
            worth = formats.amount(deal["amount_reporting"], 0)
            amount += f'<br><span class="muted worth">≈ {reporting} {worth}</span>'

        tr_class = ' class="overdue"' if overdue else ""
        owner_cell = f'<td class="owner" data-label="Owner">{owner}</td>' if show_owner else ""
        close_cell = (
            _close_cell(deal["id"], title, close_urls) if is_open else '<td class="close"></td>'
        )
        rows.append(
            f"<tr{tr_class}>"
            f'<td><a href="{detail_url(deal["id"])}">{title}</a>'
            f"{flag_badge(flags.get(deal['id']))}</td>"
            f'<td class="company">{esc(deal["company__name"])}</td>'
            f'<td class="product">{esc(deal["product__name"])} '
            f'<span class="muted">· {esc(deal["product__line__name"])}</span></td>'
            f'<td class="stage"><span class="badge{STAGE_BADGE.get(stage, "")}">'
            f"{formats.stages[stage]}</span></td>"
            f"{owner_cell}"
            f'<td class="num amount">{esc(deal["currency"])} {amount}</td>'
            f'<td class="date" data-label="Closes">'
            f"{formats.date(deal['expected_close_date'], 'j M Y')}</td>"
            f"{_next_step_cell(deal['next_step'], due, overdue, formats)}"
            f"{close_cell}"
            "</tr>"
        )
    return mark_safe("".join(rows))


def flag_badge(flag) -> str:
    """The badge of a deal that a suppression covers (a DealFlag), or nothing."""
    if flag is None:
        return ""
    kind = "badge-warn" if flag.exception else "badge-lost"
    return f' <span class="badge {kind} suppressed-flag">{esc(flag.label)}</span>'


def _next_step_cell(next_step: str, due, overdue: bool, formats: _Formats) -> str:
    if not next_step:
        return f'{NEXT_STEP_TD}<span class="muted">None planned</span></td>'
    if len(next_step) > NEXT_STEP_CHARS:
        next_step = truncatechars(next_step, NEXT_STEP_CHARS)
    when = f' <span class="muted">· {formats.date(due, "j M")}</span>' if due else ""
    badge = ' <span class="badge badge-lost">Overdue</span>' if overdue else ""
    return f"{NEXT_STEP_TD}{esc(next_step)}{when}{badge}</td>"


def _close_cell(pk: int, title: str, close_urls) -> str:
    """ "Close as …" for one open deal (title already escaped); the form opens in #modal."""
    buttons = "".join(
        f'<a class="button small" href="{url(pk)}" hx-get="{url(pk)}" '
        f'hx-target="#modal" hx-swap="innerHTML">{label}</a>'
        for url, label in close_urls
    )
    return (
        '<td class="close"><details class="close-menu"><summary>Close'
        f'<span class="visually-hidden"> {title}</span>…</summary>'
        f'<div class="close-buttons" role="group" aria-label="Close this deal">{buttons}</div>'
        "</details></td>"
    )
