# Placeholder: the insight dashboards are being written.
from django.http import Http404


def dashboard(request):
    raise Http404("Not built yet")
