"""Calendar months and quarters, the periods reports are cut by."""

import datetime
from dataclasses import dataclass

from insights.models import PeriodKind

MONTHS_IN = {PeriodKind.MONTH: 1, PeriodKind.QUARTER: 3}


def _add_months(day: datetime.date, months: int) -> datetime.date:
    index = day.year * 12 + day.month - 1 + months
    return datetime.date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True, order=True)
class Period:
    kind: str
    start: datetime.date

    @classmethod
    def containing(cls, kind: str, day: datetime.date) -> "Period":
        if kind == PeriodKind.QUARTER:
            return cls(kind, datetime.date(day.year, (day.month - 1) // 3 * 3 + 1, 1))
        return cls(kind, day.replace(day=1))

    @classmethod
    def parse(cls, kind: str, value: str) -> "Period | None":
        """The period a picker value (its first day, ISO) names, or None if it names none."""
        try:
            day = datetime.date.fromisoformat(value)
        except (TypeError, ValueError):
            return None
        period = cls.containing(kind, day)
        return period if period.start == day else None

    @property
    def end(self) -> datetime.date:
        """The first day after the period."""
        return _add_months(self.start, MONTHS_IN[self.kind])

    def shift(self, steps: int) -> "Period":
        return Period(self.kind, _add_months(self.start, steps * MONTHS_IN[self.kind]))

    def previous(self) -> "Period":
        return self.shift(-1)

    def next(self) -> "Period":
        return self.shift(1)

    @property
    def label(self) -> str:
        if self.kind == PeriodKind.QUARTER:
            return f"Q{(self.start.month - 1) // 3 + 1} {self.start.year}"
        return self.start.strftime("%B %Y")

    @property
    def short_label(self) -> str:
        if self.kind == PeriodKind.QUARTER:
            return self.label
        return self.start.strftime("%b %Y")

    @property
    def noun(self) -> str:
        return "quarter" if self.kind == PeriodKind.QUARTER else "month"

    def __str__(self) -> str:
        return self.label


def periods_between(kind: str, first: datetime.date, last: datetime.date) -> list[Period]:
    """Every period of `kind` from the one containing `first` to the one containing `last`."""
    period, end = Period.containing(kind, first), Period.containing(kind, last)
    out = []
    while period <= end:
        out.append(period)
        period = period.next()
    return out


def week_start(day: datetime.date) -> datetime.date:
    """The Monday of day's week."""
    return day - datetime.timedelta(days=day.weekday())
