"""The one answer to "which encoding is this upload in" (call lists and history imports)."""

import codecs
import io

import pytest

from crm_site import textfiles

TEXT = "email,name\r\nzoë@example.com,Zoë Müller\r\n"


@pytest.mark.parametrize(
    "data, encoding",
    [
        (TEXT.encode("utf-8"), "utf-8-sig"),
        (codecs.BOM_UTF8 + TEXT.encode("utf-8"), "utf-8-sig"),
        (TEXT.encode("utf-16"), "utf-16"),
        (codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"), "utf-16"),
        (TEXT.encode("cp1252"), "cp1252"),
    ],
    ids=["utf8", "utf8-bom", "utf16-le", "utf16-be", "windows-1252"],
)
def test_detect_and_decode_agree(data, encoding):
    stream = io.BytesIO(data)
    assert textfiles.detect(stream) == encoding and stream.tell() == 0
    assert textfiles.decode(data) == TEXT


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty"),
        (b" \r\n\t", "empty"),
        (codecs.BOM_UTF8, "empty"),
        (b"email\n\x00\x01", "binary"),
        (bytes(range(256)) * 4, "binary"),  # a NUL and bytes no encoding reads: binary first
        ("email".encode("utf-16-le"), "binary"),  # UTF-16 without its mark
        (b"email\n\x81\x8d", "encoding"),
    ],
    ids=["nothing", "white-space", "bom-only", "nul", "garbage", "utf16-no-bom", "neither"],
)
def test_what_is_not_text_is_named(data, reason):
    for read in (lambda: textfiles.detect(io.BytesIO(data)), lambda: textfiles.decode(data)):
        with pytest.raises(textfiles.NotText) as refused:
            read()
        assert refused.value.reason == reason


def test_a_large_file_is_read_in_blocks_and_a_late_byte_decides(monkeypatch):
    monkeypatch.setattr(textfiles, "BLOCK", 16)
    data = ("email\r\n" + "a@b.example\r\n" * 50).encode() + b"caf\xe9\r\n"
    assert textfiles.detect(io.BytesIO(data)) == "cp1252"


def test_history_imports_take_no_utf16():
    with pytest.raises(textfiles.NotText) as refused:
        textfiles.decode(TEXT.encode("utf-16"), utf16=False)
    assert refused.value.reason == "binary"
