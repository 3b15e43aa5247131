"""Number formats for insight reports: percentages, percentage points, days."""

from django import template

register = template.Library()


@register.filter
def pct(value) -> str:
    """0.3125 -> "31%"; nothing -> "—"."""
    if value is None or value == "":
        return "—"
    return f"{round(float(value) * 100)}%"


@register.filter
def pts(value) -> str:
    """A change in a proportion as signed percentage points: 0.13 -> "+13 pts"."""
    if value is None or value == "":
        return "—"
    points = round(float(value) * 100)
    if points == 0:
        return "±0 pts"
    return f"{points:+d} pts"


@register.filter
def days(value) -> str:
    if value is None or value == "":
        return "—"
    return f"{float(value):.0f} days"


@register.simple_tag
def interval(low, high) -> str:
    """A 95% interval of a proportion: 0.31, 0.45 -> "31–45%"; nothing -> ""."""
    if low is None or high is None:
        return ""
    return f"{round(float(low) * 100)}–{round(float(high) * 100)}%"


@register.simple_tag
def share(part, whole) -> str:
    """part of whole as a percentage: 3, 12 -> "25%"; no whole -> "—"."""
    if not whole:
        return "—"
    return f"{round(part * 100 / whole)}%"
