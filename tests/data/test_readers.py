"""Readers on small fixture files: formats, compression, line ends, errors."""

import zipfile

import pytest

from seqapps.data import DataError
from seqapps.data import readers


def test_labelled_sentences_plain_gz_crlf_bom_blank_lines(write):
    text = "\ufeff1 a fine film .\r\n\r\n0 a dull , long film\r\n  \r\n4 great\r\n"
    for name in ("plain.txt", "zipped.txt.gz"):
        path = write(name, text)
        assert readers.read_labelled_sentences(path) == [
            ("a fine film .", 1),
            ("a dull , long film", 0),
            ("great", 4),
        ]


def test_gz_found_without_suffix(write):
    write("stsa.binary.train.gz", "1 good\n0 bad\n")
    path = write("ignored", "")  # any file in the same folder
    assert readers.read_labelled_sentences(path.parent / "stsa.binary.train") == [
        ("good", 1),
        ("bad", 0),
    ]


def test_malformed_line_names_file_line_and_expectation(write):
    path = write("bad.txt", "1 good\n\n0 bad\nno label here\n")
    with pytest.raises(DataError) as error:
        readers.read_labelled_sentences(path)
    message = str(error.value)
    assert str(path) in message and "line 4" in message
    assert "no label here" in message and "integer label" in message


def test_malformed_line_is_truncated_in_message(write):
    path = write("long.txt", "x" * 500 + "\n")
    with pytest.raises(DataError) as error:
        readers.read_labelled_sentences(path)
    assert "..." in str(error.value) and len(str(error.value)) < 400


def test_missing_file_names_path_and_format(tmp_path):
    path = tmp_path / "nowhere.txt"
    with pytest.raises(DataError) as error:
        readers.read_labelled_sentences(path)
    assert str(path) in str(error.value) and "label" in str(error.value)


def test_wrong_encoding_says_which_and_how_to_change(write):
    path = write("latin.txt", "1 caf\xe9 au lait\n0 ok\n0 na\xefve\n", encoding="latin-1")
    with pytest.raises(DataError) as error:
        readers.read_labelled_sentences(path)
    message = str(error.value)
    assert str(path) in message and "line 1" in message
    assert "'utf-8'" in message and "encoding=" in message and "iconv -f latin-1" in message
    assert readers.read_labelled_sentences(path, encoding="latin-1")[0] == ("café au lait", 1)


def test_polarity_pair_latin1_keeps_lines_whole(write):
    # \x85 is NEL once decoded as Latin-1; str.splitlines() would split there.
    pos = write("rt-polarity.pos", b"a lovely film \x85 truly\ncaf\xe9 society\n")
    neg = write("rt-polarity.neg.gz", b"\na mess\r\n")
    assert readers.read_polarity_pair(pos, neg) == [
        ("a lovely film \x85 truly", 1),
        ("café society", 1),
        ("a mess", 0),
    ]


def test_delimited_tsv_without_header(write):
    path = write("data.tsv", "pos\tgreat fun\nneg\tboring\tand long\n\npos\tok\n")
    examples, names = readers.read_delimited_labelled(path)
    assert names == ["neg", "pos"]
    assert examples == [("great fun", 1), ("boring\tand long", 0), ("ok", 1)]


def test_delimited_tsv_header_in_any_order(write):
    path = write("data.tsv", "sentence\tlabel\ngreat\t1\nbad\t0\n")
    assert readers.read_delimited_labelled(path) == ([("great", 1), ("bad", 0)], ["0", "1"])


def test_delimited_csv_with_quotes_and_numeric_labels(write):
    path = write("data.csv.gz", 'id,text,label\n1,"good, really",5\n2,"bad ""very""",1\n3,meh,3\n')
    examples, names = readers.read_delimited_labelled(path)
    # 1/3/5 stars are not 0..K-1, so they are numbered in numeric order.
    assert names == ["1", "3", "5"]
    assert examples == [("good, really", 2), ('bad "very"', 0), ("meh", 1)]


def test_delimited_malformed_line(write):
    path = write("data.tsv", "1\tgood\n0 no tab here\n")
    with pytest.raises(DataError) as error:
        readers.read_delimited_labelled(path)
    assert str(path) in str(error.value) and "line 2" in str(error.value)


def test_labelled_file_detects_format(write):
    spaced = write("a.txt", "1 good film\n0 bad\n")
    tabbed = write("b.txt", "1\tgood film\n0\tbad\n")
    csv_file = write("c.csv", "label,text\n1,good film\n0,bad\n")
    expected = ([("good film", 1), ("bad", 0)], ["0", "1"])
    for path in (spaced, tabbed, csv_file):
        assert readers.read_labelled_file(path) == expected


def test_index_labels():
    assert readers.index_labels(["1", "0", "1"]) == ([1, 0, 1], ["0", "1"])
    assert readers.index_labels(["-1", "1"]) == ([0, 1], ["-1", "1"])
    assert readers.index_labels(["b", "a", "c"]) == ([1, 0, 2], ["a", "b", "c"])


def test_token_lines_append_eos(write):
    path = write("ptb.train.txt.gz", " the cat sat \n\n a dog \n")
    assert readers.read_token_lines(path) == ["the", "cat", "sat", "<eos>", "a", "dog", "<eos>"]
    assert readers.read_token_lines(path, eos=None) == ["the", "cat", "sat", "a", "dog"]


def test_read_text_normalises_line_ends_and_bom(write):
    path = write("input.txt", "\ufeffFirst:\r\nline\rtwo\n")
    assert readers.read_text(path) == "First:\nline\ntwo\n"


def test_parallel_aligned_and_gz(write):
    src = write("train.en.gz", "a dog .\na cat .\n\n")
    tgt = write("train.de", "ein hund .\r\neine katze .\r\n")
    assert readers.read_parallel(src, tgt) == [
        ("a dog .", "ein hund ."),
        ("a cat .", "eine katze ."),
    ]


def test_parallel_unequal_lengths_reports_both_counts(write):
    src = write("train.en", "a\nb\nc\n")
    tgt = write("train.de", "a\nb\n")
    with pytest.raises(DataError) as error:
        readers.read_parallel(src, tgt)
    message = str(error.value)
    assert str(src) in message and str(tgt) in message
    assert "3 lines" in message and "has 2" in message


def _anki_zip(path, lines):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("_about.txt", "about these files\n")
        archive.writestr("spa.txt", "\n".join(lines) + "\n")
    return path


def test_pair_tsv_in_zip_finds_member(tmp_path):
    path = _anki_zip(tmp_path / "spa-eng.zip", ["Go.\tVe.\tCC-BY 2.0 (France)", "Hi.\tHola."])
    assert readers.read_pair_tsv(path) == [("Go.", "Ve."), ("Hi.", "Hola.")]
    assert readers.read_pair_tsv(path, member="spa.txt", columns=(1, 0))[0] == ("Ve.", "Go.")


def test_pair_tsv_plain_and_malformed(write, tmp_path):
    assert readers.read_pair_tsv(write("pairs.tsv.gz", "a\tb\n")) == [("a", "b")]
    path = _anki_zip(tmp_path / "bad.zip", ["Go.\tVe.", "only one field"])
    with pytest.raises(DataError) as error:
        readers.read_pair_tsv(path)
    assert "bad.zip:spa.txt" in str(error.value) and "line 2" in str(error.value)


def test_pair_tsv_ambiguous_zip_asks_for_member(tmp_path):
    path = tmp_path / "two.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.txt", "x\ty\n")
        archive.writestr("b.txt", "x\ty\n")
    with pytest.raises(DataError, match="member="):
        readers.read_pair_tsv(path)
    assert readers.read_pair_tsv(path, member="b.txt") == [("x", "y")]


# --- line ends, encodings, skipping bad lines -----------------------------------


def test_nel_ends_lines_in_utf8_but_other_separators_stay_in_the_text(write):
    # NEL (C2 85 in UTF-8) and a lone CR end lines; U+2028, form feed and vertical tab,
    # which str.splitlines() would also split on, are characters inside a line.
    path = write("nel.txt", "1 a fine\u2028film\x852 a\x0cdull film\r0 bad\x0bfilm\n")
    assert readers.read_labelled_sentences(path) == [
        ("a fine\u2028film", 1), ("a\x0cdull film", 2), ("bad\x0bfilm", 0),
    ]
    tokens = write("ptb.txt", "the cat\x85a\x0cdog\n")
    assert readers.read_token_lines(tokens) == ["the", "cat", "<eos>", "a", "dog", "<eos>"]


def test_cp1252_file_suggests_the_encoding_option_and_iconv(write):
    # 0x93/0x94 are cp1252's curly quotes, 0x85 its ellipsis
    path = write("win.txt", b"1 a \x93great\x94 film\x85\n0 dull\n")
    with pytest.raises(DataError) as error:
        readers.read_labelled_sentences(path)
    message = str(error.value)
    assert "--encoding cp1252" in message and "iconv -f cp1252 -t utf-8" in message
    assert readers.read_labelled_sentences(path, encoding="cp1252")[0] == ("a \u201cgreat\u201d film\u2026", 1)
    with pytest.raises(DataError, match=r"mac\.txt, line 3: "):  # CR line ends count as lines
        readers.read_labelled_sentences(write("mac.txt", b"1 a\r0 b\r1 \x93c\x94\r"))
    latin = write("latin.txt", "1 caf\xe9\n", encoding="latin-1")
    with pytest.raises(DataError, match="--encoding latin-1"):
        readers.read_labelled_sentences(latin)


def test_reject_line_raises_outside_and_records_inside_skipping(capsys):
    with pytest.raises(DataError, match=r"^f\.txt, line 3: expected X; got 'y'\.$"):
        readers.reject_line("f.txt", 3, "expected X; got 'y'.")
    with readers.skipping_bad_lines() as skipped:
        assert readers.reject_line("f.txt", 3, "expected X") is None
    assert skipped == {"f.txt": {3: "expected X"}}
    assert capsys.readouterr().err == "f.txt: skipped 1 malformed line (3); line 3: expected X\n"


def test_skipping_bad_lines_in_every_line_reader(write, tmp_path, capsys):
    lines = "1 good\nno label\n0 bad\n\n7\nx y\n0 ok\nz\nw\n"  # bad: 2, 5, 6, 8, 9
    sentences = write("sst.txt", lines)
    tsv = write("data.tsv", "1\tgood\nno tab\n0\tbad\n")
    csv_file = write("data.csv", "label,text\n1,good\n2\n0,bad\n")
    pairs = _anki_zip(tmp_path / "p.zip", ["Go.\tVe.", "one field", "Hi.\tHola."])
    with readers.skipping_bad_lines():
        assert readers.read_labelled_sentences(sentences) == [("good", 1), ("bad", 0), ("ok", 0)]
        assert readers.read_labelled_file(tsv) == ([("good", 1), ("bad", 0)], ["0", "1"])
        assert readers.read_delimited_labelled(csv_file) == ([("good", 1), ("bad", 0)], ["0", "1"])
        assert readers.read_pair_tsv(pairs) == [("Go.", "Ve."), ("Hi.", "Hola.")]
        assert capsys.readouterr().err == ""  # reported on exit
    report = capsys.readouterr().err.splitlines()
    assert report == [
        f"{sentences}: skipped 5 malformed lines (2, 5, 6, 8, 9); line 2: expected "
        f"{readers.LABELLED_SENTENCES}; got 'no label'.",
        f"{tsv}: skipped 1 malformed line (2); line 2: expected {readers.DELIMITED}; got 'no tab'.",
        f"{csv_file}: skipped 1 malformed line (3); line 3: expected {readers.DELIMITED}; got '2'.",
        f"{pairs}:spa.txt: skipped 1 malformed line (2); line 2: expected {readers.PAIR_TSV} with "
        "at least 2 tab-separated fields; got 'one field'.",
    ]
    with pytest.raises(DataError, match="line 2"):  # outside the block: an error again
        readers.read_labelled_sentences(sentences)


def test_skip_report_lists_the_first_line_numbers_only(write, capsys):
    path = write("bad.txt", "".join(f"bad{i}\n" for i in range(12)) + "1 good\n")
    with readers.skipping_bad_lines(), readers.skipping_bad_lines(False):
        assert readers.read_labelled_sentences(path) == [("good", 1)]
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"{path}: skipped 12 malformed lines (1, 2, 3, 4, 5, ...); line 1:")


def test_skipping_every_line_is_still_an_empty_file_error(write, capsys):
    path = write("bad.txt", "a\nb\n")
    with pytest.raises(DataError, match="no examples"):
        with readers.skipping_bad_lines():
            readers.read_labelled_sentences(path)
    assert "skipped 2 malformed lines (1, 2)" in capsys.readouterr().err  # reported all the same
