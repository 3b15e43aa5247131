# Placeholder: the customer views are being written.
from django.http import Http404


def _todo(request, *args, **kwargs):
    raise Http404("Not built yet")


company_list = company_create = company_detail = company_edit = contact_create = _todo
