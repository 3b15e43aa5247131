"""
Signals that later apps (insights) listen to, sent inside the transaction that made the change;
a receiver that enqueues work must use transaction.on_commit.
"""

from django.dispatch import Signal

# Sent with survey=<SurveyRequest> when a buyer saves (or changes) their answers.
survey_answered = Signal()
