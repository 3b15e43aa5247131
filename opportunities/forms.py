"""The deal form: validation and normalisation only. Saving goes through opportunities.services."""

from django import forms
from django.db.models import Q

from accounts import access
from accounts.models import Role, User
from customers.models import Company, Contact
from customers.selectors import contacts_of
from opportunities.models import OPEN_STAGES, Competitor, Currency, Opportunity, Stage
from opportunities.selectors import products_for_picking

DATE_WIDGET = {"attrs": {"type": "date"}, "format": "%Y-%m-%d"}
# A company's people offered in the contact <select>; far more than any real account has.
CONTACT_OPTIONS_LIMIT = 200


def contact_label(contact: Contact) -> str:
    return f"{contact.full_name} — {contact.title}" if contact.title else contact.full_name


class OpportunityForm(forms.Form):
    """
    Create or edit an open deal for `user`.

    The company is picked through autocomplete into the hidden `company` field; `company_name`
    is only what the person sees and types. Contact options are the chosen company's contacts.
    Reps always own their deals, so only managers and administrators get an owner to pick,
    from the active reps and managers they may act for.
    """

    company = forms.ModelChoiceField(
        queryset=Company.objects.all(),
        widget=forms.HiddenInput,
        error_messages={
            "required": "Pick a company from the list: type part of its name, then choose it.",
            "invalid_choice": "That company could not be found. Type its name and pick it again.",
        },
    )
    company_name = forms.CharField(
        label="Company",
        required=False,
        max_length=200,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    contact = forms.ModelChoiceField(
        queryset=Contact.objects.all(),
        required=False,
        empty_label="No contact yet",
        help_text="The main person on the customer's side.",
    )
    title = forms.CharField(
        max_length=200, help_text="Short and recognisable, e.g. “Finance team rollout”."
    )
    product = forms.ChoiceField(error_messages={"invalid_choice": "Pick a product from the list."})
    owner = forms.ModelChoiceField(
        queryset=User.objects.none(),
        empty_label="Pick who owns the deal",
        error_messages={
            "invalid_choice": "You can only give deals to yourself or people in your teams."
        },
    )
    amount = forms.DecimalField(
        min_value=0,
        max_digits=14,
        decimal_places=2,
        widget=forms.NumberInput(attrs={"step": "0.01", "min": "0", "inputmode": "decimal"}),
    )
    currency = forms.ChoiceField(choices=Currency.choices, initial=Currency.GBP)
    stage = forms.ChoiceField(
        choices=[(stage.value, stage.label) for stage in OPEN_STAGES],
        initial=Stage.PROSPECTING,
        help_text="Won, lost and no-decision are set by closing the deal with its reflection.",
    )
    expected_close_date = forms.DateField(
        label="Expected close date", widget=forms.DateInput(**DATE_WIDGET)
    )
    primary_competitor = forms.ModelChoiceField(
        queryset=Competitor.objects.none(),
        required=False,
        empty_label="None known",
        label="Main competitor",
    )
    next_step = forms.CharField(
        max_length=255, required=False, help_text="Your own plan, e.g. “Send pricing to Sam”."
    )
    next_step_due = forms.DateField(
        label="Next step due", required=False, widget=forms.DateInput(**DATE_WIDGET)
    )

    def __init__(self, *args, user: User, opportunity: Opportunity | None = None, **kwargs):
        if opportunity is not None:
            kwargs.setdefault("initial", self.initial_for(opportunity))
        super().__init__(*args, **kwargs)
        self.user = user
        self.opportunity = opportunity

        self._setup_owner()
        self._setup_products()
        current_competitor = opportunity.primary_competitor_id if opportunity else None
        self.fields["primary_competitor"].queryset = Competitor.objects.filter(
            Q(active=True) | Q(pk=current_competitor)
        ).order_by("name")
        contacts = (
            contacts_of(self.company_id)[:CONTACT_OPTIONS_LIMIT]
            if self.company_id
            else Contact.objects.none()
        )
        # Validation accepts any contact so that one from another company gets a specific
        # message (in clean); the <select> only offers the chosen company's people.
        self.fields["contact"].widget.choices = [("", "No contact yet")] + [
            (contact.pk, contact_label(contact)) for contact in contacts
        ]

    @staticmethod
    def initial_for_company(company_id: str | None) -> dict:
        """
        A new deal's form started from a company's page (`?company=<id>`): that company picked
        in advance. Anything but the id of an existing company starts an empty form.
        """
        value = company_id or ""
        if not (value.isascii() and value.isdigit()):
            return {}
        company = Company.objects.filter(pk=int(value)).only("id", "name").first()
        return {"company": company.pk, "company_name": company.name} if company else {}

    @staticmethod
    def initial_for(opportunity: Opportunity) -> dict:
        return {
            "company": opportunity.company_id,
            "company_name": opportunity.company.name,
            "contact": opportunity.contact_id,
            "title": opportunity.title,
            "product": opportunity.product_id,
            "owner": opportunity.owner_id,
            "amount": opportunity.amount,
            "currency": opportunity.currency,
            "stage": opportunity.stage,
            "expected_close_date": opportunity.expected_close_date,
            "primary_competitor": opportunity.primary_competitor_id,
            "next_step": opportunity.next_step,
            "next_step_due": opportunity.next_step_due,
        }

    def _setup_owner(self) -> None:
        owner = self.fields["owner"]
        if self.user.role == Role.REP:
            # Reps own their deals. The hidden field is there so that a tampered owner is
            # refused with a message instead of being silently replaced.
            owner.queryset = User.objects.filter(pk=self.user.pk)
            owner.required = False
            owner.widget = forms.HiddenInput()
            owner.initial = self.user.pk
            return
        visible = access.users_visible_to(self.user).values("pk")
        allowed = Q(pk__in=visible, is_active=True, role__in=[Role.REP, Role.MANAGER])
        if self.opportunity is not None:
            allowed |= Q(pk=self.opportunity.owner_id)
        owner.queryset = User.objects.filter(allowed).order_by("full_name", "email")
        if self.opportunity is None:
            owner.initial = self.user.pk

    def _setup_products(self) -> None:
        products = list(products_for_picking().order_by("line__name", "name"))
        if self.opportunity is not None and all(
            p.pk != self.opportunity.product_id for p in products
        ):
            products.append(self.opportunity.product)  # A retired product stays visible.
        self._products = {str(product.pk): product for product in products}
        groups: dict[str, list[tuple[str, str]]] = {}
        for product in products:
            groups.setdefault(product.line.name, []).append((str(product.pk), product.name))
        self.fields["product"].choices = [("", "Pick a product"), *groups.items()]

    @property
    def company_id(self) -> int | None:
        """The chosen company, from the submitted data or the initial values."""
        raw = self.data.get(self.add_prefix("company")) if self.is_bound else None
        if raw is None:
            raw = self.initial.get("company")
        if isinstance(raw, Company):
            return raw.pk
        try:
            return int(raw) if raw not in (None, "") else None
        except (TypeError, ValueError):
            return None

    def clean_product(self):
        return self._products[self.cleaned_data["product"]]

    def clean(self):
        cleaned = super().clean()
        company, contact = cleaned.get("company"), cleaned.get("contact")
        if company and contact and contact.company_id != company.pk:
            self.add_error(
                "contact",
                f"{contact} does not work at {company}. Pick one of {company}'s contacts.",
            )
        if cleaned.get("next_step_due") and not cleaned.get("next_step"):
            self.add_error("next_step", "Say what the next step is, not only when.")
        return cleaned

    def service_kwargs(self) -> dict:
        """The cleaned values as keyword arguments for opportunity_create / _update."""
        data = {name: value for name, value in self.cleaned_data.items() if name != "company_name"}
        data["next_step"] = data.get("next_step") or ""
        if data.get("owner") is None:
            data.pop("owner", None)  # A rep's own deal: the view makes them the owner.
        return data


class StageMoveForm(forms.Form):
    to = forms.ChoiceField(choices=[(s.value, s.label) for s in OPEN_STAGES])


class NextStepForm(forms.Form):
    next_step = forms.CharField(
        label="Next step",
        max_length=255,
        required=False,
        help_text="What you will do next, in a few words. Leave empty to clear.",
        widget=forms.TextInput(attrs={"placeholder": "e.g. Send revised proposal"}),
    )
    next_step_due = forms.DateField(
        label="Due",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )

    def clean(self):
        cleaned = super().clean()
        step = (cleaned.get("next_step") or "").strip()
        if cleaned.get("next_step_due") and not step:
            self.add_error("next_step", "Say what the next step is, not only when.")
        cleaned["next_step"] = step
        return cleaned
