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
