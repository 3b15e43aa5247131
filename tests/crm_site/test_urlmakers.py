import pytest
from django.urls import reverse

from crm_site.urlmakers import id_url


@pytest.mark.parametrize("pk", [1, 7, 42, 987654, 2**40])
def test_id_url_gives_what_reverse_gives(pk):
    assert id_url("opportunities:detail")(pk) == reverse("opportunities:detail", args=[pk])
    assert id_url("reflections:close", "lost")(pk) == reverse(
        "reflections:close", args=[pk, "lost"]
    )


def test_id_url_refuses_a_view_without_an_id():
    with pytest.raises(Exception):  # noqa: B017 (NoReverseMatch or ValueError, both refuse)
        id_url("opportunities:pipeline")
