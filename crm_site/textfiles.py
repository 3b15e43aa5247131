"""
Which text encoding an uploaded file is written in: the one answer for every upload that is read
as text (call lists, history imports). Spreadsheet programs save "CSV" as UTF-8, with or without
a byte order mark, as UTF-16 with its byte order mark ("Unicode text"), or, older ones, as
Windows-1252. Without a byte order mark a file is UTF-8 when every byte reads as UTF-8, else
Windows-1252 when every byte reads as that; anything else is refused, and so is a file holding a
NUL (binary data: no text field can store one) or nothing but white space.

Each caller words its own refusal from NotText.reason ("empty", "binary", "encoding"), since
what to do next differs between a call list and another CRM's export.
"""

import codecs

UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
BLOCK = 256 * 1024


class NotText(ValueError):
    """The bytes are not text in an accepted encoding; `reason` says how."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _candidates(start: bytes, *, utf16: bool) -> tuple[str, ...]:
    if utf16 and start.startswith(UTF16_BOMS):
        return ("utf-16",)
    return ("utf-8-sig", "cp1252")


def detect(stream, *, utf16: bool = True) -> str:
    """
    The encoding of a binary file object, read in blocks from its start (never whole, so a
    large upload costs no memory); NotText if it has none. The stream is left at its start.
    """
    stream.seek(0)
    start = stream.read(4)
    try:
        for encoding in _candidates(start, utf16=utf16):
            try:
                _scan(stream, encoding)
            except UnicodeDecodeError:
                continue
            return encoding
        raise NotText("encoding")
    finally:
        stream.seek(0)


def _scan(stream, encoding: str) -> None:
    """Decode the whole stream as `encoding`: UnicodeDecodeError if it is not, NotText if empty."""
    stream.seek(0)
    decoder = codecs.getincrementaldecoder(encoding)()
    single_byte = encoding != "utf-16"
    seen_text = False
    for block in iter(lambda: stream.read(BLOCK), b""):
        # In UTF-8 and Windows-1252 a NUL character is a 0 byte: look for it before decoding,
        # so that binary data is named as such even when it is not valid UTF-8 either.
        if single_byte and b"\x00" in block:
            raise NotText("binary")
        text = decoder.decode(block)
        if "\x00" in text:
            raise NotText("binary")
        seen_text = seen_text or bool(text.strip())
    decoder.decode(b"", final=True)  # a file that ends inside a character
    if not seen_text:
        raise NotText("empty")


def decode(data: bytes, *, utf16: bool = True) -> str:
    """The text of bytes held in memory, by the same rules as detect()."""
    if b"\x00" in data and not (utf16 and data.startswith(UTF16_BOMS)):
        raise NotText("binary")
    for encoding in _candidates(data[:4], utf16=utf16):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if "\x00" in text:
            raise NotText("binary")
        if not text.strip():
            raise NotText("empty")
        return text
    if not data.strip():
        raise NotText("empty")
    raise NotText("encoding")
