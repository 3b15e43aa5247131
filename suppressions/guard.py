"""
The suppressions app's answer to the pipeline's pitch guard (opportunities/guard.py, named by
settings.DEBRIEF_PITCH_GUARD): the decision function, an approved exception's use, and the
flags of open deals a suppression covers.
"""

from suppressions.decisions import check, flags_for_deals
from suppressions.services import use_override

__all__ = ["check", "flags_for_deals", "use_override"]
