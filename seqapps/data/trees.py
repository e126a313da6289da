"""The Sentiment Treebank's tree format: one labelled parse tree a line.

    (3 (2 (2 The) (2 Rock)) (4 (2 is) (4 great)))

Every node is `(LABEL CHILD...)` or `(LABEL token)`, LABEL an integer 0..4 (0 very
negative ... 4 very positive); the root is the whole sentence. Leaves keep the
treebank's tokens as written (`-LRB-`, `\\/`, `n't`), which are the tokens of the
sentence-level `stsa.*` files once lowercased, so phrases read here and those sentences
are vectorized alike.

`read_trees` parses a file (`.gz` too) into `Tree`s; `tree_phrases` lists a tree's
phrases with their labels; `read_tree_phrases` gives the labelled phrases of a whole
file, each distinct phrase once. Malformed lines raise `DataError` naming the file, the
line and what was expected (or are skipped inside `readers.skipping_bad_lines()`).
"""

import dataclasses

from seqapps.data import readers
from seqapps.data.errors import DataError

TREES = "one parse tree a line, every node '(LABEL ...)' with LABEL 0-4 and tokens as leaves"
NUM_LABELS = 5


@dataclasses.dataclass(frozen=True)
class Tree:
    """A labelled node: `children` are Trees, or empty for a leaf, whose `token` is set
    (the leaf's words; one token, except a few such as the film title "8 1\\/2")."""

    label: int
    children: tuple = ()
    token: str = None

    @property
    def tokens(self):
        if self.token is not None:
            return [self.token]
        return [t for child in self.children for t in child.tokens]

    @property
    def text(self):
        return " ".join(self.tokens)


class _Malformed(Exception):
    def __init__(self, message):
        super().__init__(message)
        self.message = message


def _tokenize(line):
    """'(', ')' and the words between them; (position, piece) pairs."""
    pieces, i, n = [], 0, len(line)
    while i < n:
        c = line[i]
        if c.isspace():
            i += 1
        elif c in "()":
            pieces.append((i, c))
            i += 1
        else:
            j = i
            while j < n and not line[j].isspace() and line[j] not in "()":
                j += 1
            pieces.append((i, line[i:j]))
            i = j
    return pieces


def parse_tree(line, num_labels=NUM_LABELS):
    """Parses one tree; raises `ValueError` saying what is wrong and where (column)."""
    try:
        return _parse(line, num_labels)
    except _Malformed as error:
        raise ValueError(error.message) from None


def _parse(line, num_labels):
    pieces = _tokenize(line)
    if not pieces or pieces[0][1] != "(":
        raise _Malformed("a tree starts with '('")
    position = 0

    def node():
        nonlocal position
        start = pieces[position][0]
        position += 1  # the "("
        if position >= len(pieces) or pieces[position][1] in "()":
            raise _Malformed(f"a label after the '(' at column {start + 1}")
        column, label_text = pieces[position]
        if not (label_text.isascii() and label_text.isdigit()) or not 0 <= int(label_text) < num_labels:
            raise _Malformed(
                f"a label 0-{num_labels - 1} at column {column + 1}; got {label_text!r}"
            )
        label = int(label_text)
        position += 1
        children, words = [], []
        while True:
            if position >= len(pieces):
                raise _Malformed(f"unbalanced brackets: the '(' at column {start + 1} is never closed")
            column, piece = pieces[position]
            if piece == ")":
                position += 1
                break
            if piece == "(":
                children.append(node())
            else:
                words.append(piece)  # a leaf is usually one token; "(2 8 1\\/2)" has two
                position += 1
        token = " ".join(words) if words else None
        if token is not None and children:
            raise _Malformed(f"a token or subtrees, not both, in the node at column {start + 1}")
        if token is None and not children:
            raise _Malformed(f"a token or subtrees in the empty node at column {start + 1}")
        return Tree(label, tuple(children), token)

    tree = node()
    if position < len(pieces):
        column, piece = pieces[position]
        what = "unbalanced brackets: a ')' with no '('" if piece == ")" else "one tree a line"
        raise _Malformed(f"{what}; got {piece!r} at column {column + 1} after the tree ended")
    return tree


def tree_phrases(tree):
    """`[(text, label)]` of every node, the root first (pre-order); leaves are phrases too."""
    phrases = [(tree.text, tree.label)]
    for child in tree.children:
        phrases.extend(tree_phrases(child))
    return phrases


def read_trees(path, encoding="utf-8", num_labels=NUM_LABELS):
    """Every tree of a file (one a line), as `Tree`s.

    Blank lines at the end of the file are fine; a blank line between trees is an error
    (the treebank has none, and one means the file was cut or joined badly).
    """
    path, text = readers._read_file_text(path, encoding, TREES)
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    trees = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            readers.reject_line(
                path, number, f"expected {TREES}; got an empty line between trees."
            )
            continue
        try:
            trees.append(_parse(line, num_labels))
        except _Malformed as error:
            readers.reject_line(
                path, number, f"expected {TREES}: {error.message}. The line: {_shown(line)}"
            )
    if not trees:
        raise DataError.empty(path, TREES)
    return trees


def _shown(line, limit=80):
    line = line.strip()
    return repr(line if len(line) <= limit else line[: limit - 3] + "...")


def read_tree_sentences(path, encoding="utf-8"):
    """`[(sentence, root label)]`: the whole sentences of a tree file."""
    return [(tree.text, tree.label) for tree in read_trees(path, encoding)]


def read_tree_phrases(path, encoding="utf-8", *, distinct=True):
    """`[(phrase, label)]` of every node of every tree in the file.

    With `distinct` (the default), each phrase text is kept once, with the label of its first
    occurrence (in the treebank a phrase has one label wherever it occurs).
    """
    phrases = [p for tree in read_trees(path, encoding) for p in tree_phrases(tree)]
    if not distinct:
        return phrases
    seen, kept = set(), []
    for text, label in phrases:
        if text not in seen:
            seen.add(text)
            kept.append((text, label))
    return kept
