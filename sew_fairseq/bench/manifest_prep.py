"""``sew-bench manifests``: throughput of the LibriSpeech builder vs fairseq's ``wav2vec_manifest.py`` +
``libri_labels.py``.

    sew-bench manifests --source tests/fixtures/librispeech/LibriSpeech --files 4000 --workers 2

Builds a LibriSpeech-shaped tree (``<tmp>/LibriSpeech/train-bench/SPK/CHAP/SPK-CHAP-UTT.flac`` +
``SPK-CHAP.trans.txt``) of ``--files`` files by hard-linking (or copying) the LibriSpeech flacs found under
``--source`` (any LibriSpeech-layout folder, e.g. the real ones of ``tests/fixtures/librispeech``) and reusing their
transcripts, then times, each as a fresh process on the same tree, after one untimed warm-up run of each (page
cache):

- fairseq: ``wav2vec_manifest.py <split> --dest D --ext flac --valid-percent 0`` then
  ``libri_labels.py D/train.tsv --output-dir D --output-name train`` (from fairseq's ``examples/wav2vec``,
  found in the installed fairseq package or given with ``--fairseq-examples``);
- ours: ``python -m manifests.librispeech --root <tmp>/LibriSpeech --dest D2 --workers N --no-progress``
  (which also writes dict.ltr.txt, lexicon and LM text and the report).

Prints the best of ``--repeats`` wall times, files per second and the ratio (ours / fairseq throughput),
and checks that both wrote the same utterances, sample counts and ``.ltr`` lines. The tree is deleted
afterwards. A benchmark, not a test.
"""
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

def fixture_utterances(fixtures: str) -> List[Tuple[str, str]]:
    """(flac path, transcript) of every fixture utterance."""
    out = []
    for dirpath, _, files in sorted(os.walk(fixtures)):
        for name in sorted(files):
            if name.endswith(".trans.txt"):
                with open(os.path.join(dirpath, name), encoding="utf-8") as f:
                    for line in f:
                        uid, _, text = line.strip().partition(" ")
                        flac = os.path.join(dirpath, uid + ".flac")
                        if os.path.exists(flac):
                            out.append((flac, text))
    return out


def build_tree(dest: str, files: int, fixtures: str, per_chapter: int = 20) -> str:
    """A LibriSpeech split folder of ``files`` flacs under ``dest/LibriSpeech/train-bench``; returns it."""
    sources = fixture_utterances(fixtures)
    if not sources:
        raise SystemExit(f"no fixture flacs under {fixtures}")
    split = os.path.join(dest, "LibriSpeech", "train-bench")
    n = 0
    chapter = 0
    while n < files:
        spk, chap = 100 + chapter // 5, 1000 + chapter
        d = os.path.join(split, str(spk), str(chap))
        os.makedirs(d)
        lines = []
        for k in range(min(per_chapter, files - n)):
            src, text = sources[n % len(sources)]
            uid = f"{spk}-{chap}-{k:04d}"
            dst = os.path.join(d, uid + ".flac")
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)
            lines.append(f"{uid} {text}")
            n += 1
        with open(os.path.join(d, f"{spk}-{chap}.trans.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        chapter += 1
    return split


def fairseq_examples() -> Optional[str]:
    spec = importlib.util.find_spec("fairseq")  # locates the package without importing it
    for base in (spec.submodule_search_locations or []) if spec else []:
        cand = os.path.join(base, "examples", "wav2vec")
        if os.path.isfile(os.path.join(cand, "wav2vec_manifest.py")):
            return cand
    return None


def timed(cmds: Sequence[Sequence[str]], env: Dict[str, str]) -> float:
    start = time.perf_counter()
    for cmd in cmds:
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


class Comparison(NamedTuple):
    files: int
    workers: int
    repeats: int
    fairseq_seconds: float  # best of the repeats
    ours_seconds: float
    same: bool  # both wrote the same utterances, sample counts and .ltr lines


def compare_builders(source: str, files: int = 4000, workers: int = 2, repeats: int = 3,
                     fairseq_examples_dir: Optional[str] = None, tmp: Optional[str] = None) -> Comparison:
    """Time both builders on a tree of ``files`` flacs made from ``source`` (see the module docstring). Raises
    FileNotFoundError when fairseq's examples/wav2vec cannot be found."""
    examples = fairseq_examples_dir or fairseq_examples()
    if not examples:
        raise FileNotFoundError("fairseq's examples/wav2vec not found: pass --fairseq-examples")
    work = tempfile.mkdtemp(prefix="manifest-bench-", dir=tmp)
    env = dict(os.environ)
    py = sys.executable
    try:
        split = build_tree(work, files, source)
        fs_out, our_out = os.path.join(work, "fairseq"), os.path.join(work, "ours")
        fairseq_cmds = [
            [py, os.path.join(examples, "wav2vec_manifest.py"), split, "--dest", fs_out, "--ext", "flac",
             "--valid-percent", "0"],
            [py, os.path.join(examples, "libri_labels.py"), os.path.join(fs_out, "train.tsv"), "--output-dir", fs_out,
             "--output-name", "train"],
        ]
        our_cmds = [[py, "-m", "manifests.librispeech", "--root", os.path.dirname(split), "--dest", our_out,
                     "--workers", str(workers), "--no-progress"]]
        timed(fairseq_cmds, env), timed(our_cmds, env)  # warm-up: page cache, .pyc
        t_fs, t_ours = [], []
        for _ in range(repeats):
            t_fs.append(timed(fairseq_cmds, env))
            t_ours.append(timed(our_cmds, env))
        # same content? (fairseq: glob order; ours: sorted)
        with open(os.path.join(fs_out, "train.tsv")) as a, open(os.path.join(fs_out, "train.ltr")) as b:
            fs_rows = sorted(zip(list(a)[1:], b))
        with open(os.path.join(our_out, "train-bench.tsv")) as a, open(os.path.join(our_out, "train-bench.ltr")) as b:
            our_rows = sorted(zip(list(a)[1:], b))
        return Comparison(files, workers, repeats, min(t_fs), min(t_ours), fs_rows == our_rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def format_comparison(c: Comparison) -> str:
    n = c.files
    return "\n".join([
        f"tree: {n} flac files in {(n + 19) // 20} chapters; {os.cpu_count()} CPU(s); best of {c.repeats}",
        f"fairseq wav2vec_manifest.py + libri_labels.py : {c.fairseq_seconds:7.2f} s  {n / c.fairseq_seconds:8.0f} "
        f"files/s",
        f"manifests.librispeech --workers {c.workers:<2}            : {c.ours_seconds:7.2f} s  "
        f"{n / c.ours_seconds:8.0f} files/s",
        f"throughput ratio (ours / fairseq): {c.fairseq_seconds / c.ours_seconds:.2f}x; same utterances, sample "
        f"counts and .ltr lines: {c.same}"])
