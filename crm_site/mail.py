"""
The e-mail backend of a production site with no mail server configured. The console backend
would print every message, password-reset links included, into the server's log; this one
sends nothing, logs that it sent nothing (never what), and reports 0 messages sent, so that
callers can say so.
"""

import logging

from django.core.mail.backends.base import BaseEmailBackend

logger = logging.getLogger("debrief.mail")


class NotConfiguredBackend(BaseEmailBackend):
    def send_messages(self, email_messages) -> int:
        count = len(list(email_messages or []))
        if count:
            logger.error(
                "E-mail is not set up (set EMAIL_HOST, or EMAIL_BACKEND): %d message(s) "
                "were not sent.",
                count,
            )
        return 0
