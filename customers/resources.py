"""
CSV import and export of companies and contacts (django-import-export, used by the admin).

An import is all or nothing: the admin first shows a dry run (rolled back) as the preview, and a
file with any bad row imports nothing, with each problem named by row and column. Companies are
matched by domain and contacts by company domain and e-mail, so importing the same file twice
updates rows instead of duplicating them.

The header is checked before any row: column names are read without regard to case, spaces
(`Size band` is `size_band`) or surrounding blanks, and a file that lacks a required column or
names one this import does not know is refused, naming both and the columns it expects, so that
a misspelt column is not read as an empty one on every row.
"""

import difflib

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.validators import validate_email
from django.db.models import TextChoices
from import_export import fields, resources, widgets
from import_export.formats.base_formats import CSV

from crm_site.csvsafe import safe_cell
from customers.forms import DOMAIN_RE
from customers.models import Company, Contact, Region, Segment, SizeBand
from customers.normalize import normalize_domain, normalize_email


class SafeCSV(CSV):
    """CSV whose exported cells pass the project's formula guard (a name like
    =HYPERLINK(...) exports as text); imports read the file as it is."""

    def export_data(self, dataset, **kwargs):
        rows = [[safe_cell(cell) for cell in row] for row in dataset]
        headers = [safe_cell(h) for h in dataset.headers or []]
        safe = type(dataset)(*rows, headers=headers, title=dataset.title)
        return super().export_data(safe, **kwargs)


class RequiredTextWidget(widgets.CharWidget):
    """Stripped text that must not be empty."""

    def __init__(self, what: str, **kwargs):
        self.what = what
        super().__init__(**kwargs)

    def clean(self, value, row=None, **kwargs):
        text = super().clean(value, row, **kwargs).strip()
        if not text:
            raise ValueError(f"The {self.what} is missing; this column cannot be empty.")
        return text


class TextWidget(widgets.CharWidget):
    def clean(self, value, row=None, **kwargs):
        return super().clean(value, row, **kwargs).strip()


class ChoiceWidget(widgets.CharWidget):
    """One of a TextChoices, given by its code ("finance") or its label ("Financial services")."""

    def __init__(self, choices: type[TextChoices], what: str, **kwargs):
        self.what = what
        self.lookup = {}
        for value, label in choices.choices:
            self.lookup[value.lower()] = value
            self.lookup[str(label).lower()] = value
        self.allowed = ", ".join(choices.values)
        super().__init__(**kwargs)

    def clean(self, value, row=None, **kwargs):
        text = super().clean(value, row, **kwargs).strip()
        if not text:
            raise ValueError(f"The {self.what} is missing. Use one of: {self.allowed}.")
        try:
            return self.lookup[text.lower()]
        except KeyError:
            raise ValueError(
                f'"{text}" is not a known {self.what}. Use one of: {self.allowed}.'
            ) from None


class DomainWidget(widgets.CharWidget):
    def clean(self, value, row=None, **kwargs):
        domain = normalize_domain(super().clean(value, row, **kwargs))
        if not domain:
            raise ValueError(
                "The domain is missing. Companies are matched by their domain, so every row "
                "needs one, e.g. example.com."
            )
        if not DOMAIN_RE.match(domain):
            raise ValueError(f'"{domain}" is not a web domain such as example.com.')
        return domain


class EmailWidget(widgets.CharWidget):
    def clean(self, value, row=None, **kwargs):
        email = normalize_email(super().clean(value, row, **kwargs))
        if not email:
            raise ValueError(
                "The e-mail address is missing. Contacts are matched by company and e-mail, "
                "so every row needs one."
            )
        try:
            validate_email(email)
        except ValidationError:
            raise ValueError(f'"{email}" is not a valid e-mail address.') from None
        return email


class CompanyByDomainWidget(widgets.ForeignKeyWidget):
    def __init__(self, **kwargs):
        super().__init__(Company, field="domain", **kwargs)

    def clean(self, value, row=None, **kwargs):
        domain = normalize_domain(value)
        if not domain:
            raise ValueError("The company domain is missing; it says which company this is.")
        try:
            return Company.objects.get(domain=domain)
        except Company.DoesNotExist:
            raise ValueError(
                f'No company has the domain "{domain}". Import the company first, '
                "or correct the domain."
            ) from None


class ColumnsError(ValueError):
    """The file's header does not name the columns the import needs; the message says how."""


def _quoted(names: list[str]) -> str:
    return ", ".join(f"“{name}”" for name in names)


class AllOrNothingResource(resources.ModelResource):
    """Shared behaviour: one transaction, full model validation, errors keyed by column."""

    # Columns a file may leave out (their cells are then empty); every other one is required.
    optional_columns: tuple[str, ...] = ()

    def column_problem(self, headers: list[str]) -> str | None:
        """What is wrong with the header, in a sentence for the admin, or None."""
        expected = [field.column_name for field in self.get_import_fields()]
        required = [name for name in expected if name not in self.optional_columns]
        given = [name for name in headers if name]
        missing = [name for name in required if name not in given]
        unknown = [name for name in given if name not in expected]
        if not missing and not unknown:
            return None
        problems = []
        if missing:
            problems.append(
                f"The file has no {_quoted(missing)} column{'s' if len(missing) > 1 else ''}."
            )
        for name in unknown:
            guess = difflib.get_close_matches(name, expected, n=1, cutoff=0.6)
            hint = f" Did you mean “{guess[0]}”?" if guess else ""
            problems.append(f"“{name}” is not a column this import knows.{hint}")
        wanted = ", ".join(required)
        optional = [name for name in expected if name in self.optional_columns]
        if optional:
            wanted += f", and if you have them {', '.join(optional)}"
        return (
            " ".join(problems)
            + f" The first line of the file must name the columns {wanted}: correct it and "
            "import the file again."
        )

    def import_data(
        self,
        dataset,
        dry_run=False,
        raise_errors=False,
        use_transactions=None,
        collect_failed_rows=False,
        rollback_on_validation_errors=False,
        **kwargs,
    ):
        if dataset.headers:
            dataset.headers = [
                "_".join(str(name or "").lstrip("\ufeff").lower().split())
                for name in dataset.headers
            ]
        problem = self.column_problem(dataset.headers or [])
        if problem:
            # Refused before any row is read: each would only repeat "this field cannot be
            # blank" for the column that is not there.
            result = self.get_result_class()()
            result.diff_headers = self.get_diff_headers()
            result.total_rows = len(dataset)
            result.append_base_error(self.get_error_result_class()(ColumnsError(problem)))
            return result
        # Whoever calls this (admin preview, admin confirm, a script), a bad row means nothing
        # is saved: the admin's confirm step would otherwise skip invalid rows and keep the rest.
        return super().import_data(
            dataset,
            dry_run=dry_run,
            raise_errors=raise_errors,
            use_transactions=True,
            collect_failed_rows=collect_failed_rows,
            rollback_on_validation_errors=True,
            **kwargs,
        )

    def _column_for(self, key: str) -> str:
        for field in self.get_import_fields():
            if field.attribute == key or field.column_name == key:
                return field.column_name
        return key

    def validate_instance(self, instance, import_validation_errors=None, validate_unique=True):
        try:
            super().validate_instance(instance, import_validation_errors, validate_unique)
        except ValidationError as exc:
            # The admin labels each error with its key: make that the CSV column name.
            raise ValidationError(
                {
                    key if key == NON_FIELD_ERRORS else self._column_for(key): messages
                    for key, messages in exc.error_dict.items()
                }
            ) from exc


class CompanyResource(AllOrNothingResource):
    name = fields.Field(
        attribute="name", column_name="name", widget=RequiredTextWidget("company name")
    )
    domain = fields.Field(attribute="domain", column_name="domain", widget=DomainWidget())
    segment = fields.Field(
        attribute="segment", column_name="segment", widget=ChoiceWidget(Segment, "segment")
    )
    size_band = fields.Field(
        attribute="size_band", column_name="size_band", widget=ChoiceWidget(SizeBand, "size")
    )
    region = fields.Field(
        attribute="region", column_name="region", widget=ChoiceWidget(Region, "region")
    )

    class Meta:
        model = Company
        fields = ("name", "domain", "segment", "size_band", "region")
        import_id_fields = ("domain",)
        use_transactions = True
        clean_model_instances = True
        skip_unchanged = True
        report_skipped = True

    def get_instance(self, instance_loader, row):
        try:
            return super().get_instance(instance_loader, row)
        except ValueError as exc:
            raise ValidationError({"domain": str(exc)}) from None


class ContactResource(AllOrNothingResource):
    optional_columns = ("title", "phone")

    company = fields.Field(
        attribute="company", column_name="company_domain", widget=CompanyByDomainWidget()
    )
    full_name = fields.Field(
        attribute="full_name", column_name="full_name", widget=RequiredTextWidget("name")
    )
    title = fields.Field(attribute="title", column_name="title", widget=TextWidget())
    email = fields.Field(attribute="email", column_name="email", widget=EmailWidget())
    phone = fields.Field(attribute="phone", column_name="phone", widget=TextWidget())

    class Meta:
        model = Contact
        fields = ("company", "full_name", "title", "email", "phone")
        import_id_fields = ("company", "email")
        use_transactions = True
        clean_model_instances = True
        skip_unchanged = True
        report_skipped = True

    def get_queryset(self):
        return super().get_queryset().select_related("company")

    def get_instance(self, instance_loader, row):
        # The loader cleans the company and e-mail columns to find an existing contact; report
        # a bad value against its column like any other validation error.
        errors = {}
        for key in self.get_import_id_fields():
            field = self.fields[key]
            try:
                field.clean(row)
            except ValueError as exc:
                errors[field.column_name] = str(exc)
            except KeyError:
                return None
        if errors:
            raise ValidationError(errors)
        return super().get_instance(instance_loader, row)


def import_problems(result) -> list[str]:
    """
    Every problem in an import result as one line, e.g. 'Row 3, segment: ...', numbered as a
    spreadsheet shows the file (the header is row 1; django-import-export counts data rows).
    """
    problems = [f"{error.error}" for error in result.base_errors]
    for number, errors in result.row_errors():
        problems.extend(f"Row {number + 1}: {error.error}" for error in errors)
    for row in result.invalid_rows:
        for column, messages in row.error_dict.items():
            where = f"Row {row.number + 1}"
            if column != NON_FIELD_ERRORS:
                where += f", {column}"
            problems.extend(f"{where}: {message}" for message in messages)
    return problems
