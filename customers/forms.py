import re

from django import forms

from customers.models import Company, Contact, Region, Segment
from customers.normalize import normalize_domain, normalize_email, normalize_phone
from customers.services import domain_taken_message, email_taken_message

DOMAIN_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")


class CompanySearchForm(forms.Form):
    """The company list's search box and filters. Unknown values are ignored, not an error page."""

    q = forms.CharField(
        label="Search",
        required=False,
        max_length=100,
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Name or domain", "autocomplete": "off"}
        ),
    )
    segment = forms.ChoiceField(required=False, choices=[("", "All segments"), *Segment.choices])
    region = forms.ChoiceField(required=False, choices=[("", "All regions"), *Region.choices])

    def filters(self) -> dict[str, str]:
        """The valid, non-empty filters (call after is_valid())."""
        data = getattr(self, "cleaned_data", {})
        return {
            name: data[name].strip()
            for name in ("q", "segment", "region")
            if name in data and data[name].strip()
        }


class CompanyForm(forms.ModelForm):
    class Meta:
        model = Company
        fields = ("name", "domain", "segment", "size_band", "region")
        help_texts = {
            "domain": "The company's web domain, e.g. example.com. Pasting a web address or an "
            "e-mail address works too.",
        }

    def clean_name(self) -> str:
        return self.cleaned_data["name"].strip()

    def clean_domain(self) -> str:
        domain = normalize_domain(self.cleaned_data["domain"])
        if not domain:
            return ""
        if not DOMAIN_RE.match(domain):
            raise forms.ValidationError(
                "This does not look like a web domain. Enter one such as example.com.",
                code="invalid",
            )
        clash = Company.objects.filter(domain=domain).exclude(pk=self.instance.pk).first()
        if clash is not None:
            raise forms.ValidationError(domain_taken_message(clash), code="unique")
        return domain


class ContactForm(forms.ModelForm):
    """A new person at a given company."""

    class Meta:
        model = Contact
        fields = ("full_name", "title", "email", "phone")
        labels = {"full_name": "Name"}
        widgets = {
            "phone": forms.TextInput(attrs={"type": "tel", "autocomplete": "off"}),
        }

    def __init__(self, *args, company: Company, **kwargs):
        super().__init__(*args, **kwargs)
        self.company = company
        self.instance.company = company

    def clean_full_name(self) -> str:
        return self.cleaned_data["full_name"].strip()

    def clean_email(self) -> str:
        email = normalize_email(self.cleaned_data["email"])
        if email:
            clash = Contact.objects.filter(company=self.company, email=email).first()
            if clash is not None:
                raise forms.ValidationError(email_taken_message(clash), code="unique")
        return email

    def clean_phone(self) -> str:
        phone = self.cleaned_data["phone"].strip()
        if phone and len(normalize_phone(phone).lstrip("+")) < 6:
            raise forms.ValidationError(
                "This phone number is too short. Include the area code, e.g. 020 7946 0123.",
                code="invalid",
            )
        return phone
