"""
CSV exports of the report tables. Cells are escaped against formula injection by the project's
one guard (crm_site.csvsafe). Numbers are written as numbers; they cannot carry a formula.
"""

from django.conf import settings

from insights import selectors


def _p(value):
    """A p- or q-value to four significant figures (0.0001234 -> 0.0001234, 0.04567891 ->
    0.04568): the precision a test has, not a float's."""
    return "" if value is None else float(f"{value:.4g}")


def _days(value):
    return "" if value is None else round(value, 1)


def _pct(value):
    return "" if value is None else round(value * 100, 1)


def export_rows(report: selectors.Report, table_name: str):
    """The rows of one table (one of EXPORTABLE), with hidden slices and rows marked."""
    hidden = "not enough data"
    if table_name == "trend":
        yield ["Period", "Closed deals", "Won", "Lost", "No decision", "Win rate %"]
        for point in report.trend:
            f = point.fact
            if f is None:
                yield [point.period.label, 0, "", "", "", ""]
            elif not point.visible:
                yield [point.period.label, hidden, "", "", "", ""]
            else:
                yield [point.period.label, f.deals, f.won, f.lost, f.no_decision, _pct(f.win_rate)]
        return
    if table_name == "summary":
        yield [
            "Scope",
            "Period",
            "Closed deals",
            "Won",
            "Lost",
            "No decision",
            "Win rate %",
            "Win rate 95% low %",
            "Win rate 95% high %",
            "Previous win rate %",
            "Change (points)",
            "Test",
            "p-value",
            "q-value (this report)",
            "Meaningful shift",
            f"Amount won ({settings.DEBRIEF_REPORTING_CURRENCY})",
            f"Amount lost ({settings.DEBRIEF_REPORTING_CURRENCY})",
            "Average cycle days",
            "Imported from another CRM",
        ]
        f = report.summary
        if f is None or report.hidden:
            yield [report.scope.label, report.period.label, hidden if f else 0]
            return
        yield [
            report.scope.label,
            report.period.label,
            f.deals,
            f.won,
            f.lost,
            f.no_decision,
            _pct(f.win_rate),
            _pct(f.rate_low),
            _pct(f.rate_high),
            _pct(f.prev_rate),
            _pct(f.change),
            f.get_test_display(),
            _p(f.p_value),
            _p(f.q_value),
            "yes" if f.significant else "no",
            f.amount_won,
            f.amount_lost,
            _days(f.avg_cycle_days),
            f.imported,
        ]
        return
    table = report.table(table_name) if not report.hidden else None
    yield [
        "Dimension",
        "Source",
        "Key",
        "Label",
        "Outcome",
        "Deals",
        "Won",
        "Lost",
        "No decision",
        "Base",
        "Rate %",
        "Rate 95% low %",
        "Rate 95% high %",
        "Share %",
        "Win rate %",
        "Previous rate %",
        "Change (points)",
        "Test",
        "p-value",
        "q-value (this report)",
        "Meaningful shift",
        "Moved with",
        "Headline",
        "Headline note",
    ]
    if table is None:
        yield [table_name, "", "", hidden]
        return
    for f in table.rows:
        yield [
            f.dimension,
            f.source,
            f.key,
            f.label,
            f.outcome,
            f.deals,
            f.won,
            f.lost,
            f.no_decision,
            f.base,
            _pct(f.rate),
            _pct(f.rate_low),
            _pct(f.rate_high),
            _pct(f.share),
            _pct(f.win_rate),
            _pct(f.prev_rate),
            _pct(f.change),
            f.get_test_display(),
            _p(f.p_value),
            _p(f.q_value),
            "yes" if f.is_shift else "no",
            f.echo_label,
            f.headline,
            f.headline_note,
        ]
    if table.hidden:
        yield [table.dimension, "", "", f"{table.hidden} more rows: {hidden}"]


EXPORTABLE = {"summary", "trend"} | {dimension for dimension, _, _ in selectors.TABLES}
