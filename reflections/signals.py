"""
Signals that later apps (insights) listen to. They are sent inside the transaction that made
the change; a receiver that enqueues work must use transaction.on_commit.
"""

from django.dispatch import Signal

# Sent with reflection=<Reflection> when a deal is closed with its reflection, or amended. A
# receiver whose after-commit work could not be done may append a plain sentence for the person
# who closed to `reflection.after_commit_notes` (a list); the close page shows each one.
reflection_submitted = Signal()
# Sent with reflection=<Reflection> inside an amendment's transaction, once the amendment is
# allowed and before the reflection's answers change (a receiver can still read what it said).
reflection_amending = Signal()
# Sent with opportunity=<Opportunity>, reflection=<Reflection> when a closed deal is reopened.
opportunity_reopened = Signal()
# Sent with dates=<set of closing dates> after closed deals and their reflections were imported
# from another CRM (or an import was left out of reports or counted again). Not sent per deal:
# one import of 100,000 rows sends it once per committed batch.
reflections_imported = Signal()
