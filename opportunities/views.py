# Placeholder: the pipeline views are being written (pipeline, deal pages, deal form).
from django.http import Http404


def _todo(request, *args, **kwargs):
    raise Http404("Not built yet")


pipeline = opportunity_create = opportunity_detail = opportunity_edit = _todo
company_autocomplete = contact_options = _todo
