"""Switchboard-1 and Hub5'00 transcript normalisation (the word rules of :mod:`manifests.switchboard`).

ms98 transcripts (ISIP's Switchboard-1 release 2 corrections) and Fisher transcripts are mapped to the upper-case
letter alphabet of the other corpora; the rules are those of the README's table (Kaldi's
``egs/swbd/s5c/local/swbd1_data_prep.sh`` and the eval2000 STM/GLM conventions, as noted at each rule).
"""
import re
from collections import Counter
from typing import Iterable, List, Optional

from .common import LETTERS, outside_alphabet

HESITATIONS = frozenset({"uh", "um"})
# hyphenated backchannels are one word, written as the eval2000 STM and the GLM write them (UHHUH)
BACKCHANNELS = frozenset({"uh-huh", "um-hum", "um-hmm", "uh-hum", "huh-uh", "uh-uh", "mm-hmm", "mm-hm", "hm-mm"})
_DROP = frozenset({"[silence]", "<b_aside>", "<e_aside>", "[noise]", "[vocalized-noise]", "[laughter]"})


def normalize_token(token: str, stats: Counter, keep_partial: bool = False,
                    drop_hesitations: bool = False) -> List[str]:
    """One ms98 token -> 0 or more lower-case words (the rules: manifests.switchboard's docstring); ``stats`` counts
    each rule."""
    t = token.lower()
    if t in _DROP:
        stats["removed_" + t.strip("[]<>")] += 1
        return []
    if re.fullmatch(r"\[[a-z]+\]", t):  # other event tags: Fisher's [mn], [sigh], [cough], [lipsmack]...
        stats["removed_other_tags"] += 1
        return []
    m = re.fullmatch(r"(-?)\[laughter-(.+)\](-?)", t)  # [laughter-yes] -> yes (laughing while saying it)
    if m:
        stats["laughter_words"] += 1
        t = m.group(1) + m.group(2) + m.group(3)
    m = re.fullmatch(r"\[([^/\]]+)/[^\]]+\](-?)", t)  # [it'n/isn't] -> it'n (what was said)
    if m:
        stats["mispronunciations"] += 1
        t = m.group(1) + m.group(2)
    if "[" in t:  # partial words: th[e]- -> th-, -[an]y -> -y, ammu[n]it- -> ammu-
        stats["partial_words"] += 1
        t = re.sub(r"\[[^\]]*\]-?$", "-", t)
        t = re.sub(r"^-?\[[^\]]*\]", "-", t)
        t = re.sub(r"\[[^\]]*\].*$", "-", t)
    elif t.endswith("-") or t.startswith("-"):
        stats["partial_words"] += 1
    m = re.fullmatch(r"\{(.+)\}", t)  # {yuppiedom}: a coinage
    if m:
        stats["coinages"] += 1
        t = m.group(1)
    if re.search(r"_\d", t):  # them_1 -> them
        stats["numbered_variants"] += 1
        t = re.sub(r"_\d", "", t)
    if t.startswith("-") or t.endswith("-"):
        if not keep_partial:
            return []
        return [t]
    words: List[str] = []
    if "&" in t:
        stats["ampersands"] += 1
        t = t.replace("&", " and ")
    if "_" in t:
        stats["spelled_acronyms"] += 1
        t = t.replace("_", " ")
    if t in BACKCHANNELS:
        stats["backchannels_joined"] += 1
        t = t.replace("-", "")
    elif "-" in t:
        stats["hyphenated_split"] += 1
        t = t.replace("-", " ")
    for w in t.split():
        if drop_hesitations and w in HESITATIONS:
            stats["hesitations_removed"] += 1
            continue
        words.append(w)
    return words


def normalize_words(text: str, stats: Optional[Counter] = None, keep_partial: bool = False,
                    drop_hesitations: bool = False) -> str:
    """ms98 transcript text -> upper-case words.

    >>> normalize_words("[silence] uh i th[ink]- [laughter-yes] them_1 at&t <b_aside> x-ray [noise]")
    'UH I YES THEM AT AND T X RAY'
    """
    stats = stats if stats is not None else Counter()
    out: List[str] = []
    for token in text.split():
        out += normalize_token(token, stats, keep_partial, drop_hesitations)
    return " ".join(out).upper()


def normalize_stm_text(text: str, stats: Counter, keep_partial: bool = False) -> str:
    """Hub5 STM reference text -> words: ``{ a / b }`` -> first alternative, ``(%HESITATION)`` and other
    ``%`` tokens removed, ``(word)`` -> word, ``<...>`` tags removed, then :func:`normalize_words`."""
    text = re.sub(r"\{\s*([^/}]*?)\s*/[^}]*\}", r" \1 ", text)
    tokens = []
    for tok in text.split():
        bare = tok.strip("()")
        if not bare or bare.startswith("%") or bare == "@" or (tok.startswith("<") and tok.endswith(">")):
            stats["reference_tags_removed"] += 1
            continue
        tokens.append(bare)
    return normalize_words(" ".join(tokens), stats, keep_partial)


def fisher_lines(paths: Iterable[str], stats: Counter) -> List[str]:
    """Normalised LM lines of Fisher transcripts (``start end A: words``; ``#`` comments; ``((x))`` -> x)."""
    out = []
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip() or line.startswith("#"):
                    continue
                parts = line.split(None, 3)
                if len(parts) < 4 or not parts[2].endswith(":"):
                    stats["fisher_bad_lines"] += 1
                    continue
                text = parts[3].replace("((", " ").replace("))", " ")
                words = normalize_words(text, stats)
                if words and not outside_alphabet(words, LETTERS):
                    out.append(words)
                else:
                    stats["fisher_lines_dropped"] += 1
    return out


