"""Readers for the file formats of the bundled data sets, in pure Python.

Every reader returns plain lists, so the callers decide how to split and
batch. All of them:

- read `.gz` files transparently (by their magic bytes, and `path` may name
  the file without its `.gz`),
- strip a UTF-8 byte-order mark and accept LF, CRLF and CR line ends, and
  NEL (U+0085) in files decoded with a Unicode encoding (UTF-8/16/32),
- skip blank lines, counting them for the line numbers in messages,
- raise `DataError` naming the file, line and expected format, through
  `reject_line`; inside `with skipping_bad_lines():` a malformed line is
  skipped instead, and the skips are reported on stderr, one line per file.

Lines are split on those line ends only, never with `str.splitlines()`, which
also splits on U+2028/U+2029, form feed, vertical tab and the 0x1C-0x1E
separators: inside a line of text those are characters of the text (a form
feed or vertical tab is whitespace between tokens). NEL is a line end only in
Unicode-encoded text: in a single-byte encoding, byte 0x85 decodes to U+0085
in Latin-1, but in the Latin-1 movie-review files (and any Windows-1252 text
read as Latin-1) it is an ellipsis, and splitting there would silently break
those lines in two.
"""

import codecs
import contextlib
import contextvars
import csv
import gzip
import io
import os
import sys
import zipfile
from pathlib import Path

from seqapps.data.errors import DataError

SHOWN_LINE_NUMBERS = 5  # line numbers listed per file in a skipping_bad_lines() report
_skipped = contextvars.ContextVar("skipped_bad_lines", default=None)

LABELLED_SENTENCES = "one example a line: an integer label, a space, the sentence"
POLARITY = "one review snippet a line (rt-polarity.pos / rt-polarity.neg)"
DELIMITED = (
    "'label<TAB>text' lines, or a CSV file whose header names a 'label' "
    "column and a 'text' (or 'sentence') column"
)
TOKEN_LINES = "one sentence a line of whitespace-separated tokens"
PLAIN_TEXT = "a plain text file"
PARALLEL = "one sentence a line, line-aligned with the other language's file"
PAIR_TSV = "'source<TAB>target' lines (a .txt/.tsv file, or one inside a .zip)"

_GZIP_MAGIC = b"\x1f\x8b"


def reject_line(path, line_number, message):
    """A malformed line: raises `DataError("<path>, line <n>: <message>")`.

    Inside `skipping_bad_lines()` it records the line instead and returns, and the caller
    skips the line. `message` says what was expected and what the line holds (see
    `DataError.malformed`, whose message is the same).
    """
    record = _skipped.get()
    if record is None:
        raise DataError(f"{os.fspath(path)}, line {line_number}: {message}")
    lines = record.setdefault(os.fspath(path), {})
    lines.setdefault(line_number, message)


@contextlib.contextmanager
def skipping_bad_lines(enabled=True, stream=None):
    """Inside it, the readers skip malformed lines instead of failing at the first.

    Yields `{path: {line_number: message}}` of the lines skipped so far. On exit (also when
    an error ends the block) it prints one line per file with skipped lines on `stream`
    (default stderr): how many, the first few line numbers and the first line's reason.
    `enabled=False` is a no-op (for `with skipping_bad_lines(args.skip_bad_lines):`); an
    enabled block nested in another reports its own files at its own exit.
    Whole-file problems (a missing file, undecodable bytes, two files of unequal length,
    no examples left) are errors all the same.
    """
    if not enabled:
        yield _skipped.get()
        return
    record = {}
    token = _skipped.set(record)
    try:
        yield record
    finally:
        _skipped.reset(token)
        for line in skip_report(record):
            print(line, file=stream or sys.stderr, flush=True)


def skip_report(record):
    """The lines `skipping_bad_lines` prints, one per file, e.g.
    `data.txt: skipped 7 malformed lines (2, 5, 9, 11, 12, ...); line 2: expected ...`."""
    report = []
    for path, lines in record.items():
        numbers = sorted(lines)
        shown = ", ".join(str(n) for n in numbers[:SHOWN_LINE_NUMBERS])
        more = ", ..." if len(numbers) > SHOWN_LINE_NUMBERS else ""
        plural = "s" if len(numbers) != 1 else ""
        report.append(
            f"{path}: skipped {len(numbers)} malformed line{plural} ({shown}{more}); "
            f"line {numbers[0]}: {lines[numbers[0]]}"
        )
    return report


def _malformed(path, line_number, line, expected):
    """`reject_line` with `DataError.malformed`'s message."""
    reject_line(path, line_number, DataError.malformed_message(line, expected))


def resolve_path(path, expected):
    """Returns `path` as a `Path`, or `path.gz` if only that exists."""
    path = Path(path)
    if path.is_file():
        return path
    zipped = path.with_name(path.name + ".gz")
    if zipped.is_file():
        return zipped
    if path.is_dir():
        raise DataError(f"{path}: is a folder; expected a file with {expected}.")
    raise DataError.missing(path, f"a file with {expected}")


def _decompress(data, path):
    if not data.startswith(_GZIP_MAGIC):
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError) as error:
        raise DataError(f"{path}: not a valid gzip file ({error}).") from None


def _decode(data, path, encoding):
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        raise DataError(f"{path}: unknown encoding {encoding!r}.") from None
    # 'utf-8-sig' decodes plain UTF-8 too, and drops a leading BOM if present.
    codec = "utf-8-sig" if codec == "utf-8" else codec
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as error:
        before = data[: error.start].replace(b"\r\n", b"\n")
        line_number = before.count(b"\n") + before.count(b"\r") + 1  # LF, CRLF or CR ends
        raise DataError.bad_encoding(path, encoding, error, line_number, data=data) from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if codec.startswith(("utf", "utf_")):  # a NEL written as NEL (UTF-8: C2 85), not byte 0x85
        text = text.replace("\x85", "\n")
    return text


def _read_file_text(path, encoding, expected):
    path = resolve_path(path, expected)
    return path, _decode(_decompress(path.read_bytes(), path), path, encoding)


def _numbered_lines(text):
    """Yields `(line_number, line)` for the non-blank lines, 1-based."""
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            yield number, line


def read_text(path, encoding="utf-8"):
    """Returns the whole file as one string, line ends normalised to '\\n'."""
    return _read_file_text(path, encoding, PLAIN_TEXT)[1]


def read_labelled_sentences(path, encoding="utf-8"):
    """Reads `LABEL sentence` lines (the SST files) into `(sentence, label)`."""
    path, text = _read_file_text(path, encoding, LABELLED_SENTENCES)
    return [(s, int(label)) for s, label in _parse_labelled_sentences(path, text)]


def read_polarity_pair(pos_path, neg_path, encoding="latin-1"):
    """Reads the MR snippet files into `(sentence, label)`, 1 = pos, 0 = neg."""
    examples = []
    for path, label in ((pos_path, 1), (neg_path, 0)):
        path, text = _read_file_text(path, encoding, POLARITY)
        examples.extend((line.strip(), label) for _, line in _numbered_lines(text))
    return examples


def read_delimited_labelled(path, encoding="utf-8"):
    """Reads `label<TAB>text` lines or a `label,text` CSV file.

    A header line is recognised when it names a `label` column and a `text`
    or `sentence` column (in any order); a `.csv` file is parsed as CSV, any
    other file as tab-separated. Without a header the label is the first
    field and the text the rest.

    Returns:
        `(examples, label_names)`: `examples` is a list of `(text, label)`
        with integer labels and `label_names[label]` is the label as written;
        see `index_labels` for how labels are numbered.
    """
    path, text = _read_file_text(path, encoding, DELIMITED)
    return _indexed(_parse_delimited(path, text))


def read_labelled_file(path, encoding="utf-8"):
    """Reads any supported labelled-sentence file, telling the formats apart.

    Returns:
        `(examples, label_names)` as `read_delimited_labelled`.
    """
    return _indexed(read_raw_labelled(path, encoding))


def read_raw_labelled(path, encoding="utf-8"):
    """Like `read_labelled_file`, with the labels left as written (strings).

    For numbering the labels of several files together (train, dev and
    test of one set) with `index_labels`. The file holds `LABEL sentence`
    lines when its first non-blank line starts with an integer and a space
    and has no tab; otherwise the `read_delimited_labelled` formats.
    """
    path, text = _read_file_text(path, encoding, f"{LABELLED_SENTENCES}, or {DELIMITED}")
    first = next((line for _, line in _numbered_lines(text)), None)
    if first is None:
        raise DataError.empty(path, f"{LABELLED_SENTENCES}, or {DELIMITED}")
    fields = first.split(None, 1)
    if (
        ".csv" not in path.suffixes
        and "\t" not in first
        and len(fields) == 2
        and _is_int(fields[0])
    ):
        return _parse_labelled_sentences(path, text)
    return _parse_delimited(path, text)


def index_labels(raw_labels):
    """Numbers labels 0..K-1; returns `(labels, label_names)`.

    Labels that already are exactly the integers 0..K-1 keep their values;
    any other set (strings, -1/1, 1..5 stars) is numbered in sorted order,
    numeric order when all are integers. `label_names[i]` is label i as
    written.
    """
    raw_labels = [str(label) for label in raw_labels]
    distinct = set(raw_labels)
    if all(_is_int(label) for label in distinct):
        values = sorted(distinct, key=int)
        if [int(v) for v in values] == list(range(len(values))):
            names = [str(int(v)) for v in values]
            return [int(label) for label in raw_labels], names
    else:
        values = sorted(distinct)
    index = {value: i for i, value in enumerate(values)}
    return [index[label] for label in raw_labels], list(values)


def read_token_lines(path, encoding="utf-8", eos="<eos>"):
    """Reads whitespace-tokenised lines into one token list (PTB style).

    `eos` is appended after every line, as in the standard PTB language-model
    set-up (929,589 training tokens); `eos=None` appends nothing.
    """
    _, text = _read_file_text(path, encoding, TOKEN_LINES)
    tokens = []
    for _, line in _numbered_lines(text):
        tokens.extend(line.split())
        if eos is not None:
            tokens.append(eos)
    return tokens


def read_parallel(src_path, tgt_path, encoding="utf-8"):
    """Reads two line-aligned files into `(source, target)` pairs.

    Trailing blank lines are ignored; pairs with a blank side are skipped
    (they cannot be trained on); otherwise the files must have the same
    number of lines.
    """
    sides = []
    for path in (src_path, tgt_path):
        path, text = _read_file_text(path, encoding, PARALLEL)
        sides.append((path, text.rstrip("\n").split("\n") if text.strip() else []))
    (src_path, src_lines), (tgt_path, tgt_lines) = sides
    if len(src_lines) != len(tgt_lines):
        raise DataError(
            f"{src_path} has {len(src_lines)} lines but {tgt_path} has "
            f"{len(tgt_lines)}; expected two line-aligned files of equal length."
        )
    pairs = [
        (src.strip(), tgt.strip())
        for src, tgt in zip(src_lines, tgt_lines)
        if src.strip() and tgt.strip()
    ]
    if not pairs:
        raise DataError.empty(src_path, PARALLEL)
    return pairs


def read_pair_tsv(path, member=None, encoding="utf-8", columns=(0, 1)):
    """Reads tab-separated sentence pairs from a file or a `.zip` member.

    Args:
        path: a text file (optionally `.gz`) or a `.zip` archive.
        member: the archive member (full name or base name). By default the
            only `.txt`/`.tsv` member not starting with `_` (so the Anki
            archives' `_about.txt` is passed over).
        columns: the two column indices to return, in that order; the
            Tatoeba/Anki files have a third attribution column.
    """
    resolved = resolve_path(path, PAIR_TSV)
    if zipfile.is_zipfile(resolved):
        where, data = _read_zip_member(resolved, member)
    else:
        where, data = resolved, _decompress(resolved.read_bytes(), resolved)
    text = _decode(data, where, encoding)
    expected = f"{PAIR_TSV} with at least {max(columns) + 1} tab-separated fields"
    pairs = []
    for number, line in _numbered_lines(text):
        fields = line.split("\t")
        if len(fields) <= max(columns):
            _malformed(where, number, line, expected)
            continue
        pair = tuple(fields[c].strip() for c in columns)
        if not all(pair):
            _malformed(where, number, line, expected)
            continue
        pairs.append(pair)
    if not pairs:
        raise DataError.empty(where, PAIR_TSV)
    return pairs


def _indexed(raw_examples):
    labels, label_names = index_labels([label for _, label in raw_examples])
    examples = [(text, label) for (text, _), label in zip(raw_examples, labels)]
    return examples, label_names


def _parse_labelled_sentences(path, text):
    examples = []
    for number, line in _numbered_lines(text):
        fields = line.split(None, 1)
        if len(fields) != 2 or not _is_int(fields[0]):
            _malformed(path, number, line, LABELLED_SENTENCES)
            continue
        examples.append((fields[1].strip(), fields[0]))
    if not examples:
        raise DataError.empty(path, LABELLED_SENTENCES)
    return examples


def _parse_delimited(path, text):
    is_csv = ".csv" in path.suffixes
    rows = _csv_rows(path, text) if is_csv else _tsv_rows(text)
    examples = []
    label_column, text_column, has_header = 0, 1, False
    for row_index, (number, fields, line) in enumerate(rows):
        if row_index == 0:
            header = _header_columns(fields)
            if header is not None:
                label_column, text_column = header
                has_header = True
                continue
        if not is_csv and not has_header:
            fields = line.split("\t", 1)  # without a header, tabs may be text
        if len(fields) <= max(label_column, text_column):
            _malformed(path, number, line, DELIMITED)
            continue
        label, sentence = fields[label_column].strip(), fields[text_column].strip()
        if not label or not sentence:
            _malformed(path, number, line, DELIMITED)
            continue
        examples.append((sentence, label))
    if not examples:
        raise DataError.empty(path, DELIMITED)
    return examples


def _read_zip_member(path, member):
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
        if member is None:
            candidates = [
                n
                for n in names
                if n.lower().endswith((".txt", ".tsv"))
                and not os.path.basename(n).startswith(("_", "."))
                and not n.startswith("__MACOSX")
            ]
            if len(candidates) != 1:
                raise DataError(
                    f"{path}: cannot tell which member holds the pairs "
                    f"(members: {names}); pass `member=`."
                )
            member = candidates[0]
        elif member not in names:
            matches = [n for n in names if os.path.basename(n) == member]
            if len(matches) != 1:
                raise DataError(f"{path}: no member {member!r}; expected one of {names}.")
            member = matches[0]
        return f"{path}:{member}", archive.read(member)


def _tsv_rows(text):
    for number, line in _numbered_lines(text):
        yield number, line.split("\t"), line


def _csv_rows(path, text):
    reader = csv.reader(io.StringIO(text))
    while True:
        before = reader.line_num
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            reject_line(path, reader.line_num, f"malformed CSV ({error}); expected {DELIMITED}.")
            if reader.line_num == before:  # the reader cannot get past it
                return
            continue
        if any(field.strip() for field in fields):
            yield reader.line_num, fields, ",".join(fields)


def _header_columns(fields):
    names = [field.strip().lower() for field in fields]
    if "label" not in names:
        return None
    for text_name in ("text", "sentence"):
        if text_name in names:
            return names.index("label"), names.index(text_name)
    return None


def _is_int(text):
    try:
        int(text)
    except ValueError:
        return False
    return True
