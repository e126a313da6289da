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


class DataError(ValueError):
    """A data file is missing, malformed, mis-encoded or inconsistent."""

    @classmethod
    def missing(cls, path, expected):
        return cls(f"{os.fspath(path)}: no such file; expected {expected}.")

    @classmethod
    def malformed(cls, path, line_number, line, expected):
        return cls(
            f"{os.fspath(path)}, line {line_number}: expected {expected}; got {_shorten(line)!r}."
        )

    @classmethod
    def bad_encoding(cls, path, encoding, error, line_number=None):
        where = os.fspath(path)
        if line_number is not None:
            where += f", line {line_number}"
        return cls(
            f"{where}: cannot decode the file as {encoding!r} "
            f"({error.reason} at byte {error.start}). The apps read UTF-8: convert the file "
            "(e.g. `iconv -f latin-1 -t utf-8 IN > OUT`), or in Python pass the file's encoding "
            "with `encoding=`, e.g. 'latin-1' or 'cp1252'."
        )

    @classmethod
    def empty(cls, path, expected):
        return cls(f"{os.fspath(path)}: no examples found; expected {expected}.")
