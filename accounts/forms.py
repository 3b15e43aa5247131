from django import forms
from django.contrib.auth.forms import (
    AdminUserCreationForm,
    AuthenticationForm,
    UserChangeForm,
    UsernameField,
)

from accounts.models import User, login_key


class UserAdminCreationForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "full_name", "role", "team")

    def clean_email(self):
        email = login_key(self.cleaned_data["email"])
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("A user with this e-mail address already exists.")
        return email


class UserAdminChangeForm(UserChangeForm):
    class Meta:
        model = User
        fields = ("email", "full_name", "role", "team", "is_active")

    def clean_email(self):
        email = login_key(self.cleaned_data["email"])
        clash = User.objects.filter(email__iexact=email).exclude(pk=self.instance.pk)
        if clash.exists():
            raise forms.ValidationError("A user with this e-mail address already exists.")
        return email


class LoginForm(AuthenticationForm):
    """Django's login form, asking for the e-mail address people sign in with."""

    # Django's own field (NFKC, no length validator: an over-long name is a failed login,
    # recorded by the lockout like any other), shown as an e-mail input.
    username = UsernameField(
        label="E-mail",
        widget=forms.EmailInput(attrs={"autocomplete": "username", "autofocus": True}),
    )
