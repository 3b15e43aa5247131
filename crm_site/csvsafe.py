"""
The one guard against formula injection in every CSV the project writes (call lists, report
exports, the admin's company and contact exports): a text cell that a spreadsheet would run as
a formula gets a leading apostrophe, which spreadsheets show as text.

Cells starting with =, @, a tab or a carriage return are always escaped. A cell starting with
+ or - is escaped unless it is only a number or a phone number (digits, spaces and ( ) . / -),
which a spreadsheet cannot turn into a call: "+44 20 7946 0018" comes back as it went in.
"""

import re

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-][0-9 ()./-]*")


def safe_cell(value):
    """The cell as a spreadsheet may open it; None becomes empty, numbers stay numbers."""
    if value is None:
        return ""
    if not isinstance(value, str) or not value.startswith(FORMULA_STARTS):
        return value
    if value[0] in "+-" and _PLAIN_NUMBER.fullmatch(value):
        return value
    return "'" + value
