"""A TIMIT-layout tree (``{TRAIN,TEST}/DR*/<SPEAKER>/<SENTENCE>.{WAV,PHN,WRD,TXT}``) made from one real recording.

tests/fixtures/timit/LDC93S1.wav is TIMIT's TRAIN/DR1/FCJF0/SA1 ("She had your dark suit in greasy wash water
all year.", LDC's free sample), with its phone and word times in LDC93S1.PHN / .WRD (see fixtures/LICENSES.md).
Every utterance of the tree is a cut (or two cuts joined) of that recording at phone boundaries, written as NIST
SPHERE 16 kHz 16-bit like TIMIT's own files; its .PHN/.WRD are the phones and words inside the cuts, re-timed,
and its .TXT a sentence of those words with punctuation written here. Shared by tests/test_manifests_timit.py
and tests/test_timit_recipe.py.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, NamedTuple, Sequence, Tuple

import numpy as np
import soundfile as sf

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "timit"


class Sentence(NamedTuple):
    part: str       # TRAIN or TEST
    dialect: str    # DR1 ...
    speaker: str
    sentence: str   # SA1, SI1027, SX127 ...
    cuts: Tuple[Tuple[int, int], ...]  # sample ranges of LDC93S1.wav, joined in this order
    text: str       # the .TXT sentence


# Kaldi's lists: FAKS0 is a dev speaker (conf/dev_spk.list), MDAB0 a core-test speaker (conf/test_spk.list);
# MFXT0 (TRAIN) and FFXO0 (TEST, in neither list) are fixture names.
FULL = ((0, 46797),)
TREE: Tuple[Sentence, ...] = (
    Sentence("TRAIN", "DR1", "FCJF0", "SA1", FULL, "She had your dark suit in greasy wash water all year."),
    Sentence("TRAIN", "DR1", "FCJF0", "SA2", ((37556, 46797),), "All year."),
    Sentence("TRAIN", "DR1", "FCJF0", "SI1027", ((0, 20417),), "She had your dark suit."),
    Sentence("TRAIN", "DR1", "FCJF0", "SX127", ((20417, 33754),), "In greasy wash..."),
    Sentence("TRAIN", "DR1", "FCJF0", "SX217", ((33360, 46797),), "Water, all year!"),
    Sentence("TRAIN", "DR2", "MFXT0", "SA1", FULL, "She had your dark suit in greasy wash water all year."),
    Sentence("TRAIN", "DR2", "MFXT0", "SI1", ((28064, 33754), (44586, 46797)), "Wash."),
    Sentence("TRAIN", "DR2", "MFXT0", "SX1", ((11517, 28064),), 'Dark-suit in "greasy";'),
    Sentence("TEST", "DR1", "FAKS0", "SA2", ((37556, 46797),), "All year."),
    Sentence("TEST", "DR1", "FAKS0", "SI943", ((0, 9190),), "She had?"),
    Sentence("TEST", "DR1", "FAKS0", "SX43", ((37556, 46797),), "All year."),
    Sentence("TEST", "DR1", "MDAB0", "SI1039", ((33360, 46797),), "Water all year."),
    Sentence("TEST", "DR1", "MDAB0", "SX139", ((0, 20417),), "She had your dark suit."),
    Sentence("TEST", "DR2", "FFXO0", "SI1", ((20417, 33754),), "In greasy wash."),
)


def _timed(path: Path) -> List[Tuple[int, int, str]]:
    return [(int(a), int(b), label) for a, b, label in (line.split() for line in path.read_text().splitlines())]


def cut(cuts: Sequence[Tuple[int, int]]):
    """(samples [int16], phone lines, word lines) of LDC93S1 cut at ``cuts`` and joined, times re-based."""
    audio, rate = sf.read(FIXTURE / "LDC93S1.wav", dtype="int16")
    assert rate == 16000
    phones, words = _timed(FIXTURE / "LDC93S1.PHN"), _timed(FIXTURE / "LDC93S1.WRD")
    pieces, phn, wrd, offset = [], [], [], 0
    for a, b in cuts:
        pieces.append(audio[a:b])
        phn += [f"{s - a + offset} {e - a + offset} {p}" for s, e, p in phones if s >= a and e <= b]
        wrd += [f"{s - a + offset} {e - a + offset} {w}" for s, e, w in words if s >= a and e <= b]
        offset += b - a
    return np.concatenate(pieces), phn, wrd


def make_tree(root: Path, lower: bool = False, sentences: Sequence[Sentence] = TREE) -> Path:
    """Write the tree under ``root/TIMIT`` (all names lower-case with ``lower``); returns that folder."""
    case = str.lower if lower else str
    timit = root / case("TIMIT")
    for s in sentences:
        folder = timit / case(s.part) / case(s.dialect) / case(s.speaker)
        folder.mkdir(parents=True, exist_ok=True)
        samples, phn, wrd = cut(s.cuts)
        base = folder / case(s.sentence)
        sf.write(f"{base}.{case('WAV')}", samples, 16000, format="NIST", subtype="PCM_16")
        Path(f"{base}.{case('PHN')}").write_text("".join(line + "\n" for line in phn))
        Path(f"{base}.{case('WRD')}").write_text("".join(line + "\n" for line in wrd))
        Path(f"{base}.{case('TXT')}").write_text(f"0 {len(samples)} {s.text}\n")
    return timit


# (id, audio path under the TIMIT folder, samples, words, 39 phones) per split, in manifest order. Samples are the
# lengths of the cuts of tests/timit_tree.py (e.g. SI1027 = LDC93S1[0:20417]); phones from the cut's .PHN lines
EXPECTED = {
    "train": [
        ("FCJF0_SI1027", "TRAIN/DR1/FCJF0/SI1027.WAV", 20417, "SHE HAD YOUR DARK SUIT",
         # h# sh ix hv eh dcl jh ih dcl d ah kcl k s ux
         "sil sh ih hh eh sil jh ih sil d ah sil k s uw"),
        ("FCJF0_SX127", "TRAIN/DR1/FCJF0/SX127.WAV", 33754 - 20417, "IN GREASY WASH",
         # q en gcl g r iy s iy w ao sh epi  (q deleted)
         "n sil g r iy s iy w aa sh sil"),
        ("FCJF0_SX217", "TRAIN/DR1/FCJF0/SX217.WAV", 46797 - 33360, "WATER ALL YEAR",
         # epi w ao dx axr ao l y ih axr h#
         "sil w aa dx er aa l y ih er sil"),
        ("MFXT0_SI1", "TRAIN/DR2/MFXT0/SI1.WAV", (33754 - 28064) + (46797 - 44586), "WASH",
         # w ao sh epi h#  (epi h# -> sil sil, merged)
         "w aa sh sil"),
        ("MFXT0_SX1", "TRAIN/DR2/MFXT0/SX1.WAV", 28064 - 11517, "DARK SUIT IN GREASY",
         # dcl d ah kcl k s ux q en gcl g r iy s iy
         "sil d ah sil k s uw n sil g r iy s iy"),
    ],
    "dev": [  # FAKS0 is on Kaldi's dev_spk.list
        ("FAKS0_SI943", "TEST/DR1/FAKS0/SI943.WAV", 9190, "SHE HAD", "sil sh ih hh eh sil"),
        ("FAKS0_SX43", "TEST/DR1/FAKS0/SX43.WAV", 46797 - 37556, "ALL YEAR", "aa l y ih er sil"),
    ],
    "test": [  # MDAB0 is on Kaldi's test_spk.list (core test)
        ("MDAB0_SI1039", "TEST/DR1/MDAB0/SI1039.WAV", 46797 - 33360, "WATER ALL YEAR",
         "sil w aa dx er aa l y ih er sil"),
        ("MDAB0_SX139", "TEST/DR1/MDAB0/SX139.WAV", 20417, "SHE HAD YOUR DARK SUIT",
         "sil sh ih hh eh sil jh ih sil d ah sil k s uw"),
    ],
}
THIRTY_NINE = ("aa ae ah aw ay b ch d dh dx eh er ey f g hh ih iy jh k l m n ng ow oy p r s sh sil t th uh uw v w y "
               "z").split()
