"""Atomic writes: an output file holds either the whole new content or what it held before, never half of it.

Every file the plugin's commands write (results, trn/tsv/ctm reports, ARPA LMs, filtered manifests, CSVs,
plots, converted checkpoints) goes through here, so a crash, a full disk or Ctrl-C leaves no truncated output:

    with atomic_open("results.json", "w", encoding="utf-8") as f:   # a file object
        json.dump(summary, f)
    with atomic_file("model.pt", suffix=".pt") as tmp:               # a path, for writers that want one
        torch.save(state, tmp)

The result has the permissions a plain ``open(path, "w")`` would give it: those of the file it replaces, else the
default for new files under the umask (``mkstemp`` alone would leave 0600, unreadable to the rest of a group).
The temporary file lies in the target's directory (``os.replace`` is atomic only within one file system) under a
unique ``.tmp-*`` name, so concurrent writers (one per distributed rank) do not collide; the last rename wins.
``manifests/common.py`` keeps its own small copy because the corpus builders must not import fairseq.
"""
import contextlib
import os
import stat
import tempfile
from typing import IO, Iterator, Union

PathLike = Union[str, "os.PathLike[str]"]


def replacement_mode(path: PathLike, directory: bool = False) -> int:
    """Permission bits for a new ``path``: the existing file's, else 0666 (0777 for a directory) less the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return (0o777 if directory else 0o666) & ~umask


@contextlib.contextmanager
def atomic_file(path: PathLike, suffix: str = "") -> Iterator[str]:
    """Yield a temporary file name next to ``path``; on success it is renamed to ``path``, on any error
    (KeyboardInterrupt included) removed and the error re-raised: ``path`` is whole or untouched."""
    directory = os.path.dirname(os.path.abspath(os.fspath(path)))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, replacement_mode(path))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """``open(path, mode, **kwargs)`` for writing, through :func:`atomic_file` (the file is renamed into place when
    the block ends without an error)."""
    if mode not in ("w", "wt", "wb"):
        raise ValueError(f"atomic_open writes a whole file: mode must be 'w', 'wt' or 'wb', not {mode!r}")
    with atomic_file(path, suffix=os.path.splitext(os.fspath(path))[1]) as tmp:
        with open(tmp, mode, **kwargs) as f:
            yield f
