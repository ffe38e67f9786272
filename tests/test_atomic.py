"""manifests.atomic: an output is the whole new content or the old one, and no temporary file is left behind;
and the writers that use it (trn, ARPA, results) keep the old file when writing fails half-way."""
import os

import pytest

from manifests.atomic import atomic_file, atomic_open
from manifests.arpa import estimate_arpa
from manifests.trn import UtteranceResult, write_utterance_tsv


def _listing(directory):
    return sorted(os.listdir(directory))


def test_atomic_open_writes_the_whole_file(tmp_path):
    path = tmp_path / "sub" / "out.txt"  # the directory is created
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write("one\n")
        assert not path.exists()  # nothing at the target until the block ends
        f.write("two\n")
    assert path.read_text() == "one\ntwo\n"
    assert _listing(path.parent) == ["out.txt"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, error):
    path = tmp_path / "out.json"
    path.write_text("old\n")
    with pytest.raises(error):
        with atomic_open(path, "w") as f:
            f.write("half of the new")
            raise error()
    assert path.read_text() == "old\n"
    assert _listing(tmp_path) == ["out.json"]


def test_atomic_file_gives_a_path_for_writers_that_want_one(tmp_path):
    path = tmp_path / "model.bin"
    with atomic_file(path, suffix=".bin") as tmp:
        assert os.path.dirname(tmp) == str(tmp_path) and tmp.endswith(".bin")
        with open(tmp, "wb") as f:
            f.write(b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    with pytest.raises(ValueError, match="mode"):
        with atomic_open(path, "a"):
            pass


def test_writers_keep_the_old_file_when_they_fail(tmp_path):
    tsv = tmp_path / "utterances.tsv"
    write_utterance_tsv(tsv, [UtteranceResult("a", "HELLO", "HELLO")])
    before = tsv.read_text()
    # a result whose reference is not a string fails after the header and the first row were written
    with pytest.raises((AttributeError, TypeError)):
        write_utterance_tsv(tsv, [UtteranceResult("b", "GOOD DAY", "GOOD DAY"), UtteranceResult("c", None, "X")])
    assert tsv.read_text() == before
    assert _listing(tmp_path) == ["utterances.tsv"]

    lm = estimate_arpa(["HELLO WORLD", "HELLO THERE"], order=2)
    arpa = tmp_path / "lm.arpa"
    lm.write(arpa)
    good = arpa.read_text()
    assert good.startswith("\\data\\") and good.rstrip().endswith("\\end\\")
    lm.ngrams[-1][("HELLO", None)] = (-1.0, 0.0)  # not a word: writing fails at the last n-gram
    with pytest.raises(TypeError):
        lm.write(arpa)
    assert arpa.read_text() == good
    assert _listing(tmp_path) == ["lm.arpa", "utterances.tsv"]


def _mode(path):
    return os.stat(path).st_mode & 0o777


def test_outputs_get_the_permissions_open_would_give(tmp_path):
    # mkstemp makes 0600 files (and mkdtemp 0700 folders); a result must be readable as a plain open() makes it
    from manifests.atomic import atomic_directory

    old = os.umask(0o022)
    try:
        new = tmp_path / "new.txt"
        with atomic_open(new) as f:
            f.write("x")
        assert _mode(new) == 0o644
        kept = tmp_path / "kept.txt"
        kept.write_text("old")
        os.chmod(kept, 0o640)
        with atomic_open(kept) as f:
            f.write("new")
        assert _mode(kept) == 0o640 and kept.read_text() == "new"
        with atomic_directory(str(tmp_path / "hf")) as d:
            (tmp_path / d / "config.json").write_text("{}")
        assert _mode(tmp_path / "hf") == 0o755
    finally:
        os.umask(old)
