"""``sew-manifest pack``: a manifest directory's audio packed into uncompressed zip shards that fairseq reads in place.

    sew-manifest pack data/librispeech --dest data/librispeech_packed                 # every <split>.tsv
    sew-manifest pack data/librispeech --dest /fast/ls_packed --splits train-960 dev-other --shard-mb 2000

A corpus of a million small files is slow to copy, list and open on network storage; a few hundred shards are not.
For each split, ``<split>.tsv`` (first line the audio root, then ``relpath<TAB>frames``) becomes shards
``<dest>/<split>-00000.zip``, ``-00001.zip``, ... of at most ``--shard-mb`` MB (10^6 bytes; a larger file gets a
shard of its own), stored without compression (ZIP_STORED), each member a FLAC file, and a manifest whose lines are

    /abs/dest
    train-clean-100-00000.zip:1078:225360	225360

``shard.zip:offset:length``: the member's data (after its local header), as fairseq's ``FileAudioDataset`` reads it
(``fairseq/data/audio/audio_utils.py``: ``parse_path`` splits the path at every ``:``, ``read_from_stored_zip``
memory-maps ``length`` bytes at ``offset``, and ``is_sf_audio_data`` wants them to start as WAV, FLAC or Ogg data).
The frame counts, the order of the lines and so every label file stay as they were: the other files of the split
(``<split>.ltr``, ``.wrd``, ``.phn``, ``.report.json``, ...) and every ``dict.*.txt`` are copied unchanged.
Members are named after the original relative paths (with ``.flac``), so ``sew-infer`` reports the same utterance
ids for the packed split as for the original.

The samples do not change: a FLAC file is stored byte for byte; other integer PCM (WAV, SPHERE, AIFF, ... 8, 16 or
24 bits; mu-law and A-law, which decode to 16 bits) is re-encoded as FLAC of the same bit depth, which decodes to
the same samples. Audio with no lossless FLAC form (float, Vorbis, Opus, MP3) is refused, naming the manifest line.
Rates and channel counts are kept: check the packed manifest as the original (``manifests.check``, the checked
fairseq tasks). Writing: the split's old ``<split>.tsv`` in ``dest`` is removed first, each shard is written to a
temporary file and renamed into place, then the labels and the ``.tsv`` last; shards of an earlier run beyond the
new count are removed. A ``<split>.tsv`` present is therefore complete, and the same input gives byte-identical
files. The destination may not contain ``:`` (fairseq would split the path there), nor be the manifest directory.
"""
import argparse
import io
import logging
import os
import posixpath
import re
import shutil
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from .atomic import atomic_file, atomic_files
from .audio import AudioError, read_zip_slice, split_zip_slice
from .check import parse_manifest_line
from .common import run_main, setup_logging
from .records import ManifestError, PathLike

logger = logging.getLogger(__name__)

DEFAULT_SHARD_MB = 1000.0
#: a member's share of the zip beyond its data: local header (30 bytes) and central directory entry (46), each
#: with the name
_ZIP_ENTRY = 76
#: integer PCM that FLAC holds losslessly -> the FLAC subtype that decodes to the same samples
LOSSLESS = {"PCM_S8": "PCM_S8", "PCM_U8": "PCM_S8", "PCM_16": "PCM_16", "PCM_24": "PCM_24", "ULAW": "PCM_16",
            "ALAW": "PCM_16"}
_DATE = (1980, 1, 1, 0, 0, 0)  # a fixed member time: the same input gives byte-identical shards


@dataclass(frozen=True)
class PackedSplit:
    """What :func:`pack_manifests` wrote for one split."""

    split: str
    utterances: int
    shards: List[str]  # paths of the shard files
    audio_bytes: int  # FLAC bytes stored (each distinct file once)
    copied: List[str]  # the split's other files (labels, report) copied with it


def shard_name(split: str, index: int) -> str:
    return f"{split}-{index:05d}.zip"


def entry_id(root: str, relpath: str) -> str:
    """A manifest entry's utterance id: its path without the extension; for an ``archive.zip:offset:length`` entry
    the name, without the extension, of the zip member whose data starts there (``relpath`` itself if none does).
    Packed members are named after these ids, so a packed split has the ids of the original."""
    archive, zip_slice = split_zip_slice(relpath)
    if zip_slice is None:
        return os.path.splitext(relpath)[0]
    member = member_at(os.path.join(root, archive), zip_slice[0])
    return posixpath.splitext(member)[0] if member is not None else relpath


def _member_name(entry: str) -> str:
    """The zip member of an utterance id: a relative POSIX path (no ``..``, no leading ``/``) ending in ``.flac``."""
    parts = [p for p in posixpath.normpath(entry.replace(os.sep, "/")).split("/") if p not in ("", ".", "..")]
    return ("/".join(parts) or "audio") + ".flac"


def as_flac(data: bytes) -> bytes:
    """``data`` (a whole audio file) as FLAC bytes that decode to the same samples: FLAC as it is, other integer PCM
    re-encoded at its bit depth. ValueError (the reason) for anything else."""
    if data[:4] == b"fLaC":
        return data
    import soundfile as sf

    try:
        f = sf.SoundFile(io.BytesIO(data))
    except Exception as e:  # LibsndfileError / RuntimeError
        raise ValueError(f"libsndfile cannot read it ({' '.join(str(e).split())})") from None
    with f:
        subtype, rate, frames = f.subtype, f.samplerate, f.frames
        if subtype not in LOSSLESS:
            raise ValueError(f"{f.format} {subtype} audio has no lossless FLAC form")
        try:
            samples = f.read(dtype="int32", always_2d=True)  # libsndfile scales every integer PCM into int32
        except Exception as e:
            raise ValueError(f"decoding failed ({' '.join(str(e).split())})") from None
    if len(samples) != frames:
        raise ValueError(f"decoding stopped after {len(samples)} of {frames} samples")
    out = io.BytesIO()
    sf.write(out, samples, rate, format="FLAC", subtype=LOSSLESS[subtype])
    return out.getvalue()


class _Entry:
    """One manifest line to pack."""

    __slots__ = ("line_no", "relpath", "frames", "member", "location")

    def __init__(self, line_no: int, relpath: str, frames: int) -> None:
        self.line_no, self.relpath, self.frames = line_no, relpath, frames
        self.member = ""
        self.location: Optional[Tuple[str, int, int]] = None  # (shard name, data offset, length)


def read_manifest(tsv: str) -> Tuple[str, List[_Entry]]:
    """(audio root, entries) of a fairseq manifest; a malformed line is a :class:`ManifestError` naming it."""
    try:
        with open(tsv, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise ManifestError(tsv, None, "manifest_not_found", f"cannot read the manifest ({e.strerror})") from None
    if not lines or not lines[0].strip() or "\t" in lines[0]:
        raise ManifestError(tsv, 1, "missing_root", "the first line is not the audio root directory")
    entries = []
    for line_no, line in enumerate(lines[1:], start=2):
        entry, problem = parse_manifest_line(line)
        if problem is not None:
            raise ManifestError(tsv, line_no, *problem)
        entries.append(_Entry(line_no, *entry))
    return lines[0].strip(), entries


def _name_members(root: str, entries: List[_Entry]) -> None:
    """Member names from the utterance ids; a second path with the same name gets its line number added."""
    owner: Dict[str, str] = {}
    for e in entries:
        name = _member_name(entry_id(root, e.relpath))
        if owner.setdefault(name, e.relpath) != e.relpath:
            name = f"{name[:-len('.flac')]}.{e.line_no}.flac"
        owner[name] = e.relpath
        e.member = name


def _flac_members(tsv: str, root: str, entries: List[_Entry], progress: bool) -> Iterator[Tuple[_Entry, bytes]]:
    """(entry, FLAC bytes) of each distinct relative path, in manifest order."""
    from tqdm import tqdm

    seen = set()
    for e in tqdm(entries, desc=f"packing {os.path.basename(tsv)}", unit="file", disable=not progress):
        if e.relpath in seen:
            continue
        seen.add(e.relpath)
        path = os.path.join(root, e.relpath)
        try:
            flac = as_flac(_read_bytes(path))
        except AudioError as err:
            raise ManifestError(tsv, e.line_no, err.reason, err.detail, path) from None
        except ValueError as err:
            raise ManifestError(tsv, e.line_no, "unpackable", str(err), path,
                                hint="convert it to 16-bit FLAC or WAV first, or remove the line") from None
        yield e, flac


def _read_bytes(path: str) -> bytes:
    """A whole audio file, or the bytes an ``archive.zip:offset:length`` path names."""
    file_path, zip_slice = split_zip_slice(path)
    if zip_slice is not None:
        return read_zip_slice(path, file_path, zip_slice)
    try:
        with open(file_path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise AudioError(path, "missing", "no such file") from None
    except OSError as e:
        raise AudioError(path, "unreadable", e.strerror or str(e)) from None
    if not data:
        raise AudioError(path, "empty", "0 bytes")
    return data


def data_offsets(zip_path: str) -> Dict[str, Tuple[int, int]]:
    """member name -> (offset of its data, length) in a zip (read from each local header, whose extra field may
    differ from the central directory's)."""
    found = {}
    with zipfile.ZipFile(zip_path) as z, open(zip_path, "rb") as f:
        for info in z.infolist():
            f.seek(info.header_offset)
            header = f.read(30)
            if header[:4] != b"PK\x03\x04":
                raise ValueError(f"{zip_path}: no local header at byte {info.header_offset} for {info.filename}")
            name_len, extra_len = int.from_bytes(header[26:28], "little"), int.from_bytes(header[28:30], "little")
            found[info.filename] = (info.header_offset + 30 + name_len + extra_len, info.compress_size)
    return found


@lru_cache(maxsize=64)
def _members_by_offset(zip_path: str, mtime_ns: int) -> Dict[int, str]:
    return {offset: name for name, (offset, _) in data_offsets(zip_path).items()}


def member_at(zip_path: str, offset: int) -> Optional[str]:
    """The name of the member of ``zip_path`` whose data starts at ``offset`` (what a packed manifest line names),
    or None."""
    try:
        return _members_by_offset(os.path.abspath(zip_path), os.stat(zip_path).st_mtime_ns).get(offset)
    except (OSError, ValueError, zipfile.BadZipFile):
        return None


def _write_shards(dest: str, split: str, members: Iterator[Tuple[_Entry, bytes]], limit: int) -> Tuple[List[str],
                                                                                                        int]:
    """Write the members into shards of at most ``limit`` bytes; fill each entry's ``location``."""
    shards: List[str] = []
    total = 0
    pending = next(members, None)
    while pending is not None:
        name = shard_name(split, len(shards))
        path = os.path.join(dest, name)
        placed: List[Tuple[_Entry, int]] = []
        with atomic_file(path, ".zip") as tmp:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as z:
                size = 0
                while pending is not None:
                    entry, data = pending
                    cost = len(data) + _ZIP_ENTRY + 2 * len(entry.member.encode())
                    if placed and size + cost > limit:
                        break
                    z.writestr(zipfile.ZipInfo(entry.member, date_time=_DATE), data)
                    placed.append((entry, len(data)))
                    size += cost
                    total += len(data)
                    pending = next(members, None)
            offsets = data_offsets(tmp)
            for entry, length in placed:
                offset, stored = offsets[entry.member]
                if stored != length:
                    raise ValueError(f"{path}: {entry.member} stored as {stored} bytes, not {length}")
                entry.location = (name, offset, length)
        shards.append(path)
    return shards, total


def _remove_stale_shards(dest: str, split: str, keep: int) -> None:
    pattern = re.compile(re.escape(split) + r"-(\d{5})\.zip")
    for name in os.listdir(dest):
        match = pattern.fullmatch(name)
        if match and int(match.group(1)) >= keep:
            os.unlink(os.path.join(dest, name))


def split_files(directory: str, splits: Sequence[str]) -> Dict[str, List[str]]:
    """split -> the other files of it in ``directory`` (``<split>.<anything>`` but the ``.tsv``, each file to the
    longest split name it starts with, so ``train.other.ltr`` is ``train.other``'s, not ``train``'s)."""
    out: Dict[str, List[str]] = {s: [] for s in splits}
    by_length = sorted(splits, key=len, reverse=True)
    for name in sorted(os.listdir(directory)):
        if name.endswith(".tsv") or not os.path.isfile(os.path.join(directory, name)):
            continue
        owner = next((s for s in by_length if name.startswith(s + ".")), None)
        if owner is not None:
            out[owner].append(name)
    return out


def pack_manifests(manifest_dir: PathLike, dest: PathLike, shard_mb: float = DEFAULT_SHARD_MB,
                   splits: Optional[Sequence[str]] = None, progress: bool = True) -> List[PackedSplit]:
    """Pack the ``splits`` (default: every ``<split>.tsv``) of ``manifest_dir`` into ``dest`` (see the module)."""
    source, dest = os.path.abspath(os.fspath(manifest_dir)), os.path.abspath(os.fspath(dest))
    if not os.path.isdir(source):
        raise ManifestError(f"{source}: no such manifest directory")
    if ":" in dest:
        raise ManifestError(f"{dest}: a packed manifest's paths may not contain ':' (fairseq splits them there); "
                            f"choose another --dest")
    if os.path.isdir(dest) and os.path.samefile(source, dest):
        raise ManifestError(f"{dest}: --dest is the manifest directory itself; choose another")
    if not shard_mb > 0:
        raise ValueError(f"--shard-mb must be positive, not {shard_mb}")
    available = sorted(name[:-len(".tsv")] for name in os.listdir(source) if name.endswith(".tsv"))
    chosen = list(splits) if splits else available
    missing = [s for s in chosen if s not in available]
    if missing:
        raise ManifestError(f"{os.path.join(source, missing[0] + '.tsv')}: no such manifest (splits here: "
                            f"{', '.join(available) or 'none'})")
    if not chosen:
        raise ManifestError(f"{source}: no <split>.tsv manifest to pack")
    others = split_files(source, available)
    os.makedirs(dest, exist_ok=True)
    done = []
    for split in chosen:
        tsv = os.path.join(source, f"{split}.tsv")
        root, entries = read_manifest(tsv)
        _name_members(root, entries)
        target = os.path.join(dest, f"{split}.tsv")
        if os.path.exists(target):
            os.unlink(target)  # until the new one is in place: no manifest pointing at shards being replaced
        shards, stored = _write_shards(dest, split, _flac_members(tsv, root, entries, progress),
                                       int(shard_mb * 1_000_000))
        _remove_stale_shards(dest, split, len(shards))
        where = {e.relpath: e.location for e in entries if e.location is not None}
        lines = [dest] + ["{}:{}:{}\t{}".format(*where[e.relpath], e.frames) for e in entries]
        copied = others[split]
        with atomic_files([os.path.join(dest, n) for n in copied] + [target]) as tmps:
            for name, tmp in zip(copied, tmps):
                shutil.copyfile(os.path.join(source, name), tmp)
            with open(tmps[-1], "w", encoding="utf-8", newline="\n") as f:
                f.writelines(line + "\n" for line in lines)
        done.append(PackedSplit(split, len(entries), shards, stored, copied))
        logger.debug("%s: %d utterances -> %d shard(s), %.1f MB", split, len(entries), len(shards), stored / 1e6)
    for name in sorted(os.listdir(source)):
        if re.fullmatch(r"dict\..+\.txt", name):
            with atomic_file(os.path.join(dest, name)) as tmp:
                shutil.copyfile(os.path.join(source, name), tmp)
            logger.debug("copied %s", name)
    return done


def build_parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog or "sew-manifest pack", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("manifest_dir", metavar="MANIFEST_DIR", help="directory of <split>.tsv manifests and their labels")
    p.add_argument("--dest", required=True, help="directory to write the shards, manifests and labels to")
    p.add_argument("--shard-mb", type=float, default=DEFAULT_SHARD_MB,
                   help="largest shard in MB (10^6 bytes; default %(default)g)")
    p.add_argument("--splits", nargs="+", metavar="SPLIT", help="splits to pack (default: every <split>.tsv)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    args = build_parser(prog).parse_args(argv)
    setup_logging(args.verbose)

    def pack() -> None:
        for packed in pack_manifests(args.manifest_dir, args.dest, args.shard_mb, args.splits,
                                     progress=not args.no_progress):
            print(f"{packed.split}: {packed.utterances} utterances in {len(packed.shards)} shard(s), "
                  f"{packed.audio_bytes / 1e6:.1f} MB of FLAC; copied {' '.join(packed.copied) or 'no label file'}")
        print(f"wrote {os.path.abspath(args.dest)}")

    return run_main(prog or "sew-manifest pack", pack)


if __name__ == "__main__":
    raise SystemExit(main())
