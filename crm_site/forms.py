"""Small helpers shared by every app's views."""

from django import forms
from django.core.exceptions import ValidationError


def add_service_errors(form: forms.Form, error: ValidationError) -> None:
    """
    Put a service's ValidationError on the form that sent the data: on the field it names
    when the form has that field, else at the top. Error codes are kept (e.g. "suppressed").
    """
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for field, errors in error.error_dict.items():
        form.add_error(field if field in form.fields else None, errors)
