from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect


@login_required
def home(request):
    """Everyone starts from their own plan: the next steps they set themselves."""
    return redirect("opportunities:plan")
