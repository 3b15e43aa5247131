"""
Signals that later apps (insights) listen to. They are sent inside the transaction that made
the change; a receiver that enqueues work must use transaction.on_commit.
"""

from django.dispatch import Signal

# Sent with reflection=<Reflection> when a deal is closed with its reflection, or amended.
reflection_submitted = Signal()
# Sent with opportunity=<Opportunity>, reflection=<Reflection> when a closed deal is reopened.
opportunity_reopened = Signal()
