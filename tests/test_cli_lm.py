"""sew-lm: lexicon, ARPA and vocabulary check on real transcripts (the LibriSpeech fixtures)."""
from pathlib import Path

from manifests.lexicon import main
from manifests.arpa import read_arpa_vocabulary
from manifests.lexicon import read_lexicon

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "librispeech" / "LibriSpeech" / "test-clean"


def test_lexicon_arpa_and_check(tmp_path, capsys):
    # LibriSpeech trans.txt lines are "ID WORDS..."; a .wrd file holds the words only
    lines = [l.split(" ", 1)[1] for f in sorted(FIXTURES.rglob("*.trans.txt")) for l in f.read_text().splitlines()]
    (tmp_path / "train.wrd").write_text("\n".join(lines) + "\n")
    (tmp_path / "extra.txt").write_text("ZYZZYVA\n")
    assert main(["lexicon", "--wrd", str(tmp_path / "train.wrd"), "--words", str(tmp_path / "extra.txt"),
                 "-o", str(tmp_path / "lexicon.txt")]) == 0
    lexicon = read_lexicon(tmp_path / "lexicon.txt")
    assert lexicon["ZYZZYVA"] == [list("ZYZZYVA") + ["|"]] and "HE" in lexicon
    assert main(["arpa", "--text", str(tmp_path / "train.wrd"), "--order", "2", "-o", str(tmp_path / "lm.arpa")]) == 0
    vocabulary = read_arpa_vocabulary(tmp_path / "lm.arpa")
    assert {w for line in lines for w in line.split()} <= vocabulary and "ZYZZYVA" not in vocabulary
    capsys.readouterr()
    assert main(["check", "--lm", str(tmp_path / "lm.arpa"), "--lexicon", str(tmp_path / "lexicon.txt")]) == 0
    assert main(["check", "--lm", str(tmp_path / "lm.arpa"), "--lexicon", str(tmp_path / "lexicon.txt"),
                 "--strict"]) == 1
    assert "ZYZZYVA" in capsys.readouterr().out
    assert main(["lexicon", "-o", str(tmp_path / "x.txt")]) == 2
    assert main(["arpa", "--text", str(tmp_path / "missing.txt"), "-o", str(tmp_path / "y.arpa")]) == 1
