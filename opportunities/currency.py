"""
Amounts in the reporting currency (settings.DEBRIEF_REPORTING_CURRENCY) at the configured fixed
rates (settings.DEBRIEF_CURRENCY_RATES). A deal keeps its amount as entered and, beside it, the
same amount in the reporting currency (Opportunity.amount_reporting), which the pipeline sorts
and filters by, so that GBP 2,400 and EUR 2,600 line up by what they are worth.
After changing the rates, `manage.py reprice_deals` brings every stored figure in step.
"""

from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Case, DecimalField, F, Value, When
from django.db.models.functions import Round

CENT = Decimal("0.01")


def currency_rates() -> dict[str, Decimal]:
    """Rates into the reporting currency, checked: every deal currency needs one."""
    from opportunities.models import Currency

    rates = {}
    for code, value in settings.DEBRIEF_CURRENCY_RATES.items():
        try:
            rates[code.strip().upper()] = Decimal(str(value).strip())
        except InvalidOperation as exc:
            raise ImproperlyConfigured(
                f"DEBRIEF_CURRENCY_RATES: {code}={value!r} is not a number."
            ) from exc
    missing = [c for c in Currency.values if c not in rates]
    if missing:
        raise ImproperlyConfigured(
            f"DEBRIEF_CURRENCY_RATES has no rate for {', '.join(missing)}; add one per currency."
        )
    return rates


def to_reporting(
    amount: Decimal, currency: str, rates: dict[str, Decimal] | None = None
) -> Decimal:
    """`amount` of `currency` in the reporting currency, to the cent."""
    rate = (rates or currency_rates())[currency]
    return (Decimal(amount) * rate).quantize(CENT)


def reporting_expression(rates: dict[str, Decimal] | None = None):
    """to_reporting() as an SQL expression over a deal's amount and currency (for UPDATEs)."""
    rates = rates or currency_rates()
    output = DecimalField(max_digits=16, decimal_places=2)
    return Round(
        Case(
            *(
                When(currency=code, then=F("amount") * Value(rate, output_field=output))
                for code, rate in rates.items()
            ),
            default=F("amount"),
            output_field=output,
        ),
        2,
    )


def reprice(batch_size: int = 20_000) -> int:
    """
    Recompute every deal's amount_reporting at today's configured rates, in batches of ids
    (each an UPDATE of its own, so a million deals never hold one long lock). The deals whose
    figure changed; run after changing DEBRIEF_CURRENCY_RATES.
    """
    from opportunities.models import Opportunity

    expression = reporting_expression()
    changed, last = 0, 0
    while True:
        ids = list(
            Opportunity.objects.filter(pk__gt=last)
            .order_by("pk")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return changed
        last = ids[-1]
        batch = Opportunity.objects.filter(pk__gte=ids[0], pk__lte=last)
        changed += batch.exclude(amount_reporting=expression).update(amount_reporting=expression)
