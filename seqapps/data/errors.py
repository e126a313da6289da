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


class FoldError(DataError):
    """A cross-validation request the data cannot meet: more folds than examples, or a fold
    number outside 0..num_folds-1.

    The message names the data and the options in the library's terms (`num_folds`, `fold`);
    an app re-raises it in its own: `raise error.renamed(data=path, num_folds="--folds",
    fold="--fold") from None`.
    """

    def __init__(self, *, num_examples, num_folds, fold=None, data=None, names=None):
        self.num_examples, self.num_folds, self.fold, self.data = num_examples, num_folds, fold, data
        self.names = {"num_folds": "num_folds", "fold": "fold", **(names or {})}
        super().__init__(self._message())

    def renamed(self, data=None, **names):
        """The same error naming `data` (e.g. the file) and the options as given (keys
        `num_folds`, `fold`)."""
        return FoldError(num_examples=self.num_examples, num_folds=self.num_folds, fold=self.fold,
                         data=self.data if data is None else data, names={**self.names, **names})

    def _message(self):
        data = os.fspath(self.data) if self.data is not None else "the data"
        n, k, folds_name, fold_name = self.num_examples, self.num_folds, self.names["num_folds"], self.names["fold"]
        if self.fold is not None:
            return f"{data}: {fold_name} must be in 0..{k - 1} for {k} folds; got {self.fold}."
        if n < 2:
            return (f"{data}: {n} example{'s' if n != 1 else ''} cannot be split into folds; "
                    "cross-validation needs at least 2.")
        return (f"{data}: {n} examples cannot make {k} folds (each fold needs at least one); "
                f"{folds_name} must be in 2..{n}; got {k}.")
