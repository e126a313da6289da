"""The treebank reader: hand-written trees give exactly their phrases; malformed trees give
errors naming the file, the line and what was expected."""

import gzip

import pytest

from seqapps.data import DataError
from seqapps.data import load_sentiment
from seqapps.data.readers import skipping_bad_lines
from seqapps.data.trees import Tree
from seqapps.data.trees import parse_tree
from seqapps.data.trees import read_tree_phrases
from seqapps.data.trees import read_tree_sentences
from seqapps.data.trees import read_trees
from seqapps.data.trees import tree_phrases


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_a_three_node_tree_gives_exactly_its_phrases_and_labels():
    tree = parse_tree("(3 (2 not) (4 bad))")
    assert tree == Tree(3, (Tree(2, (), "not"), Tree(4, (), "bad")))
    assert tree_phrases(tree) == [("not bad", 3), ("not", 2), ("bad", 4)]


def test_nested_tree_phrases_are_the_spans_of_every_node_root_first():
    tree = parse_tree("(1 (2 (2 The) (2 film)) (0 (2 is) (0 dreadful)))")
    assert tree_phrases(tree) == [
        ("The film is dreadful", 1), ("The film", 2), ("The", 2), ("film", 2),
        ("is dreadful", 0), ("is", 2), ("dreadful", 0),
    ]
    assert tree.text == "The film is dreadful"


def test_tokens_are_kept_as_the_treebank_writes_them():
    # The sentence files (stsa.*) write the same tokens, lowercased: -lrb- , \/ , n't
    tree = parse_tree(r"(2 (2 -LRB-) (2 (2 co-writer\/director) (2 (2 does) (1 n't))) (2 -RRB-))")
    assert tree.text == r"-LRB- co-writer\/director does n't -RRB-"
    # a leaf of two words (the film title "8 1/2" in the treebank) is one phrase
    assert tree_phrases(parse_tree(r"(2 (2 8 1\/2) (2 .))"))[1] == (r"8 1\/2", 2)


def test_file_reading_with_distinct_phrases_gz_and_sentences(tmp_path):
    text = "(3 (2 not) (4 bad))\n(4 (2 not) (4 (4 bad) (2 !)))\n\n"
    path = tmp_path / "train.txt.gz"
    path.write_bytes(gzip.compress(text.encode()))
    assert read_tree_sentences(path) == [("not bad", 3), ("not bad !", 4)]
    # "not" and "bad" occur twice: kept once each, with their first label
    assert read_tree_phrases(path) == [
        ("not bad", 3), ("not", 2), ("bad", 4), ("not bad !", 4), ("bad !", 4), ("!", 2),
    ]
    assert len(read_tree_phrases(path, distinct=False)) == 8
    assert len(read_trees(tmp_path / "train.txt")) == 2  # named without its .gz


@pytest.mark.parametrize(
    "line, expected",
    [
        ("(3 (2 not) (4 bad)", "unbalanced brackets: the '(' at column 1 is never closed"),
        ("(3 (2 not) (4 bad)))", "unbalanced brackets: a ')' with no '('"),
        ("(7 (2 not) (4 bad))", "a label 0-4 at column 2; got '7'"),
        ("(3 (2 not) (x bad))", "a label 0-4 at column 13; got 'x'"),
        ("(3 (2 not) (-1 bad))", "a label 0-4 at column 13; got '-1'"),
        ("3 not bad", "a tree starts with '('"),
        ("(3 (2 not) bad)", "a token or subtrees, not both"),
        ("(3 (2 not) ())", "a label after the '(' at column 12"),
        ("(3 (2 not)) (4 bad)", "one tree a line"),
    ],
)
def test_malformed_trees_name_file_line_and_what_was_expected(tmp_path, line, expected):
    path = write(tmp_path / "trees.txt", "(2 (2 fine) (2 line))\n" + line + "\n")
    with pytest.raises(DataError) as error:
        read_trees(path)
    message = str(error.value)
    assert message.startswith(f"{path}, line 2: expected one parse tree a line")
    assert expected in message


def test_an_empty_line_between_trees_is_an_error_but_not_at_the_end(tmp_path):
    path = write(tmp_path / "trees.txt", "(2 (2 a) (2 b))\n\n(3 (2 c) (3 d))\n")
    with pytest.raises(DataError, match=r"trees.txt, line 2: .*an empty line between trees"):
        read_trees(path)
    assert len(read_trees(write(tmp_path / "end.txt", "(2 (2 a) (2 b))\n\n\n"))) == 1


def test_an_empty_file_is_an_error(tmp_path):
    with pytest.raises(DataError, match="no examples found; expected one parse tree a line"):
        read_trees(write(tmp_path / "empty.txt", "\n"))


def test_skipping_bad_lines_skips_malformed_trees(tmp_path, capsys):
    path = write(tmp_path / "trees.txt", "(2 (2 a) (2 b))\n(9 x)\n(3 (2 c) (3 d))\n")
    with skipping_bad_lines():
        sentences = read_tree_sentences(path)
    assert sentences == [("a b", 2), ("c d", 3)]
    assert "trees.txt: skipped 1 malformed line (2); line 2: expected one parse tree" in capsys.readouterr().err


def test_a_folder_of_tree_files_trains_on_phrases_and_tests_on_sentences(tmp_path):
    write(tmp_path / "train.txt", "(3 (2 not) (4 bad))\n(0 (2 so) (0 dull))\n")
    write(tmp_path / "dev.txt", "(4 (4 great) (2 fun))\n(0 (0 awful) (2 .))\n")
    write(tmp_path / "test.txt", "(1 (2 a) (1 (2 bit) (1 slow)))\n(3 (3 quite) (3 nice))\n")
    data = load_sentiment(tmp_path)
    assert data.label_names == ["very negative", "negative", "neutral", "positive", "very positive"]
    assert data.train == [("not bad", 3), ("not", 2), ("bad", 4), ("so dull", 0), ("so", 2), ("dull", 0)]
    assert data.validation == [("great fun", 4), ("awful .", 0)]
    assert data.test == [("a bit slow", 1), ("quite nice", 3)]


def test_a_tree_folder_without_a_test_file_says_so(tmp_path):
    write(tmp_path / "train.txt", "(3 (2 not) (4 bad))\n")
    write(tmp_path / "dev.txt", "(4 (4 great) (2 fun))\n")
    with pytest.raises(DataError, match="a tree folder needs train, dev and test files; no test file"):
        load_sentiment(tmp_path)


def test_bundled_phrase_sets_follow_the_published_protocol():
    binary = load_sentiment("sst2-phrases")
    sentences = load_sentiment("sst2")
    assert len(binary.train) == 77616  # distinct non-neutral train phrases
    assert binary.label_names == ["negative", "positive"]
    # validation and test are the whole sentences: those of the sentence-level SST-2 files
    assert len(binary.validation) == len(sentences.validation) == 872
    assert sorted((t.lower(), y) for t, y in binary.test) == sorted(sentences.test)
    fine = load_sentiment("sst5-phrases")
    assert len(fine.train) == 159274 and len(fine.test) == 2210
    assert {y for _, y in fine.train} == {0, 1, 2, 3, 4}
