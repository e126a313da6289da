"""The one exception type of the data layer.

A `DataError` is meant to be read by the person who passed the file, so its
message always names the file, the line when one is at fault, and what was
expected there. The constructors below keep those messages uniform.
"""

import os

_MAX_SHOWN = 80  # characters of an offending line quoted in a message


def _shorten(text, limit=_MAX_SHOWN):
    text = text.rstrip("\r\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _has_cp1252_bytes(data):
    if not any(0x80 <= b <= 0x9F for b in data):
        return False
    try:
        data.decode("cp1252")
    except UnicodeDecodeError:  # 0x81, 0x8D, 0x8F, 0x90, 0x9D are unassigned in cp1252
        return False
    return True


class DataError(ValueError):
    """A data file is missing, malformed, mis-encoded or inconsistent."""

    @classmethod
    def missing(cls, path, expected):
        return cls(f"{os.fspath(path)}: no such file; expected {expected}.")

    @classmethod
    def malformed(cls, path, line_number, line, expected):
        return cls(f"{os.fspath(path)}, line {line_number}: {cls.malformed_message(line, expected)}")

    @staticmethod
    def malformed_message(line, expected):
        """`expected <expected>; got '<line>'.`, the line shortened (for `reject_line`)."""
        return f"expected {expected}; got {_shorten(line)!r}."

    @classmethod
    def bad_encoding(cls, path, encoding, error, line_number=None, data=None):
        """A file that does not decode. `data` (the file's bytes) lets the message name the
        likelier single-byte encoding: cp1252 when bytes 0x80-0x9F occur (its curly quotes,
        dashes, ellipsis; control characters in Latin-1), else latin-1."""
        where = os.fspath(path)
        if line_number is not None:
            where += f", line {line_number}"
        guess = "cp1252" if data is not None and _has_cp1252_bytes(data) else "latin-1"
        return cls(
            f"{where}: cannot decode the file as {encoding!r} "
            f"({error.reason} at byte {error.start}). If it is {guess} text, pass "
            f"`--encoding {guess}` (in Python: `encoding={guess!r}`), or convert the file to "
            f"UTF-8: `iconv -f {guess} -t utf-8 IN > OUT`."
        )

    @classmethod
    def empty(cls, path, expected):
        return cls(f"{os.fspath(path)}: no examples found; expected {expected}.")
