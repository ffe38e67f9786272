"""Atomic writes: an output holds either the whole new content or what it held before, never half of it.

The one place in the project that renames files into place. Every output of the corpus builders and of the
plugin's commands (manifests and labels, audio, results, trn/tsv/ctm reports, ARPA LMs, transcripts, CSVs, plots,
converted checkpoints and directories) goes through here, so a crash, a full disk or Ctrl-C leaves no truncated
output:

    with atomic_open("results.json", "w", encoding="utf-8") as f:   # a file object
        json.dump(summary, f)
    with atomic_file("model.pt", suffix=".pt") as tmp:               # a path, for writers that want one
        torch.save(state, tmp)
    with atomic_files(["a.wrd", "a.ltr", "a.tsv"]) as tmps:          # several files, renamed in this order
        ...
    with atomic_directory("hf_model/") as tmp:                       # a whole directory
        model.save_pretrained(tmp)
    atomic_write_text("lexicon.txt", lines)                          # newline-terminated lines

The result has the permissions a plain ``open(path, "w")`` would give it: those of the file it replaces, else the
default for new files under the umask (``mkstemp`` alone would leave 0600, unreadable to the rest of a group).
The temporary file lies in the target's directory (``os.replace`` is atomic only within one file system) under a
unique ``.tmp-*`` name, so concurrent writers (one per distributed rank) do not collide; the last rename wins.
Standard library only.
"""
import contextlib
import os
import shutil
import stat
import tempfile
from typing import IO, Iterable, Iterator, List, Sequence

from .records import PathLike


def replacement_mode(path: PathLike, directory: bool = False) -> int:
    """Permission bits for a new ``path``: the existing file's, else 0666 (0777 for a directory) less the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return (0o777 if directory else 0o666) & ~umask


def _temporary(path: str, suffix: str) -> str:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=directory)
    os.close(fd)
    return tmp


@contextlib.contextmanager
def atomic_files(paths: Sequence[PathLike], suffix: str = "") -> Iterator[List[str]]:
    """Yield one temporary file name next to each of ``paths``; on success they are renamed onto ``paths`` in that
    order (the last one last, after the old last file was removed: while the others are renamed the set reads as
    absent, so put the file whose presence marks a complete set last); on any error (KeyboardInterrupt included)
    all are removed and the error re-raised, and ``paths`` keep what they held."""
    targets = [os.fspath(p) for p in paths]
    tmps: List[str] = []
    try:
        for target in targets:
            tmps.append(_temporary(target, suffix or os.path.splitext(target)[1]))
        yield list(tmps)
        for target, tmp in zip(targets, tmps):
            os.chmod(tmp, replacement_mode(target))
        if len(targets) > 1 and os.path.exists(targets[-1]):
            os.unlink(targets[-1])
        for target, tmp in zip(targets, tmps):
            os.replace(tmp, target)
    except BaseException:
        for tmp in tmps:
            with contextlib.suppress(OSError):
                os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_file(path: PathLike, suffix: str = "") -> Iterator[str]:
    """Yield a temporary file name next to ``path``; on success it is renamed to ``path``, on any error
    (KeyboardInterrupt included) removed and the error re-raised: ``path`` is whole or untouched."""
    with atomic_files([path], suffix) as (tmp,):
        yield tmp


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """``open(path, mode, **kwargs)`` for writing, through :func:`atomic_file` (the file is renamed into place when
    the block ends without an error)."""
    if mode not in ("w", "wt", "wb"):
        raise ValueError(f"atomic_open writes a whole file: mode must be 'w', 'wt' or 'wb', not {mode!r}")
    with atomic_file(path, suffix=os.path.splitext(os.fspath(path))[1]) as tmp:
        with open(tmp, mode, **kwargs) as f:
            yield f


def atomic_write_text(path: PathLike, lines: Iterable[str]) -> None:
    """Write ``lines``, each followed by a newline, to ``path`` (UTF-8) atomically."""
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            f.write(line)
            f.write("\n")


@contextlib.contextmanager
def atomic_directory(path: PathLike) -> Iterator[str]:
    """Yield a temporary directory next to ``path``; on success it replaces ``path`` (a directory or nothing; the
    old one is moved aside first, then deleted), on any error it is deleted and ``path`` left as it was."""
    target = os.path.abspath(os.fspath(path))
    if os.path.isfile(target):
        raise ValueError(f"{path} is a file; give a directory to write")
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-" + os.path.basename(target) + "-", dir=parent)
    try:
        yield tmp
        os.chmod(tmp, replacement_mode(target, directory=True))
        if os.path.isdir(target):
            old = tempfile.mkdtemp(prefix=".old-", dir=parent)
            os.replace(target, os.path.join(old, "d"))
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
