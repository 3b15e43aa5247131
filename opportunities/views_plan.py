# Placeholder: the board and plan views are being written.
from django.http import Http404


def _todo(request, *args, **kwargs):
    raise Http404("Not built yet")


board = move_stage = next_step_edit = plan = _todo
