"""Collecting input files safely: single files, folders, lists of files and .zip archives.

No Django imports. File names are never trusted: zip members are read into memory under
their index, members whose names are absolute or contain ``..`` are skipped. Zip bombs are
refused from the central directory before anything is inflated (declared total size and
expansion ratio) and members are read bounded by their declared size (declared sizes can lie).
"""

from __future__ import annotations

import io
import os
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

from dicomio.errors import InputRefused

DEFAULT_MAX_BYTES = 1024 * 1024 * 1024  # 1 GiB uncompressed in total
DEFAULT_MAX_FILES = 20000
# Compressed data (zip members, deflated DICOM) may expand at most this many times once it is
# larger than the floor. Measured on /work/shared/data: CT slices deflate 1.0-3.2 times,
# NIfTI CTs 1.5-2.5, the most compressible DICOM (an RGB secondary capture) 46 times; a
# deflate stream of zeros expands about 1030 times.
MAX_INFLATE_RATIO = 200.0
INFLATE_RATIO_FLOOR = 1024 * 1024  # bytes: small files may compress better (blank slices)


@dataclass
class SourceFile:
    """One input file: a display ``name`` (for messages only) and a way to open it."""

    name: str
    path: Path | None = None
    data: bytes | None = None

    def open(self) -> io.BufferedIOBase:
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.path is not None
        return open(self.path, "rb")

    def head(self, n: int) -> bytes:
        with self.open() as fh:
            return fh.read(n)


@dataclass
class Sources:
    files: list[SourceFile]
    kind: str  # "file", "files", "folder", "zip"
    skipped: list[str] = field(default_factory=list)


def human_bytes(n: float) -> str:
    """``n`` bytes as a short human string (decimal units)."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"


def _unsafe_member_name(name: str) -> bool:
    if not name or name.startswith(("/", "\\")):
        return True
    if PureWindowsPath(name).drive:
        return True
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return any(part == ".." for part in parts)


def is_zip(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def bomb_message(name: str, inflated: float, compressed: float, *, at_least: bool = False) -> str:
    """The refusal of a decompression bomb: ``name`` expands to ``inflated`` bytes from
    ``compressed`` bytes, more than :data:`MAX_INFLATE_RATIO` times."""
    more = "more than " if at_least else ""
    return (
        f"{name} expands to {more}{human_bytes(inflated)} from {human_bytes(compressed)} "
        f"({more}{inflated / max(compressed, 1):.0f} times): refused as a decompression bomb "
        f"(real DICOM data compresses less than {MAX_INFLATE_RATIO:.0f} times)"
    )


def inflate_limit(compressed: int, max_bytes: int) -> int:
    """Bytes that ``compressed`` bytes of deflated data may expand to: ``MAX_INFLATE_RATIO``
    times, at least ``INFLATE_RATIO_FLOOR`` and at most ``max_bytes``."""
    return min(int(max_bytes), max(INFLATE_RATIO_FLOOR, int(MAX_INFLATE_RATIO * compressed)))


def _check_declared(path: Path, infos: list[zipfile.ZipInfo], max_bytes: int, max_files: int) -> None:
    """Refuse an archive from its central directory before any member is inflated: too many
    members, a declared total beyond ``max_bytes`` or beyond the ratio limit of the archive's
    size, or one member declaring more than the ratio limit of its compressed size."""
    if len(infos) > max_files:
        raise InputRefused(
            f"{path.name}: the zip archive holds {len(infos)} files, more than the limit of {max_files}"
        )
    declared = sum(info.file_size for info in infos)
    if declared > max_bytes:
        raise InputRefused(
            f"{path.name}: the zip archive expands to {human_bytes(declared)}, more than the limit "
            f"of {human_bytes(max_bytes)}"
        )
    archive_size = path.stat().st_size
    if declared > inflate_limit(archive_size, max_bytes):
        raise InputRefused(bomb_message(f"the zip archive {path.name}", declared, archive_size))
    for info in infos:
        if info.file_size > inflate_limit(info.compress_size, max_bytes):
            base = PurePosixPath(info.filename.replace("\\", "/")).name
            raise InputRefused(
                bomb_message(
                    f"the zip archive {path.name} (member {base!r})",
                    info.file_size,
                    info.compress_size,
                )
            )


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str) -> bytes:
    """A member's bytes, never more than it declares: zipfile stops inflating at the declared
    size (and a member holding more then fails its CRC check); checked again here."""
    try:
        with archive.open(info) as member:
            data = member.read(info.file_size + 1)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError, zlib.error) as exc:
        raise InputRefused(f"{label} cannot be read: it is damaged or forged ({exc})") from None
    if len(data) > info.file_size:
        raise InputRefused(f"{label} holds more than the {info.file_size} bytes it declares: refused")
    return data


def read_zip(path: Path, *, max_bytes: int, max_files: int) -> tuple[list[SourceFile], list[str]]:
    """Read the members of a zip archive into memory, bounded before anything is inflated
    (declared total within ``max_bytes`` and within ``MAX_INFLATE_RATIO`` times the
    archive's size, each member within that ratio of its compressed size) and while reading
    (no member yields more than it declares, the total is counted)."""
    files: list[SourceFile] = []
    skipped: list[str] = []
    total = 0
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InputRefused(f"{path.name} is not a readable zip archive ({exc})") from None
    with archive:
        infos = [info for info in archive.infolist() if not info.is_dir()]
        _check_declared(path, infos, max_bytes, max_files)
        for index, info in enumerate(infos):
            if _unsafe_member_name(info.filename):
                skipped.append(f"zip member with unsafe name {info.filename!r}")
                continue
            base = PurePosixPath(info.filename.replace("\\", "/")).name
            if (
                base.startswith(".")
                or base.upper() == "DICOMDIR"
                or info.filename.startswith("__MACOSX/")
            ):
                skipped.append(f"zip member {base!r} (hidden or DICOMDIR)")
                continue
            data = _read_member(archive, info, f"{path.name}: zip member #{index + 1} ({base})")
            total += len(data)
            if total > max_bytes:
                raise InputRefused(
                    f"{path.name}: the zip archive expands to more than the limit of "
                    f"{human_bytes(max_bytes)}"
                )
            files.append(SourceFile(name=f"zip member #{index + 1} ({base})", data=data))
    return files, skipped


def collect_sources(
    sources: Path | str | Iterable[Path | str],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_files: int = DEFAULT_MAX_FILES,
) -> Sources:
    """Turn a file, a folder, a list of files or a .zip into a flat list of :class:`SourceFile`.

    Folders are walked recursively (hidden files and DICOMDIR skipped, symlinks not followed).
    Raises :class:`InputRefused` when nothing is there or a size limit is exceeded.
    """
    if isinstance(sources, str | Path):
        paths = [Path(sources)]
    else:
        paths = [Path(p) for p in sources]
    if not paths:
        raise InputRefused("no input files were given")
    files: list[SourceFile] = []
    skipped: list[str] = []
    kinds = set()
    for path in paths:
        if path.is_dir():
            kinds.add("folder")
            for root, dirs, names in os.walk(path, followlinks=False):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(names):
                    full = Path(root) / name
                    if name.startswith(".") or name.upper() == "DICOMDIR" or full.is_symlink():
                        skipped.append(f"{name} (hidden, DICOMDIR or link)")
                        continue
                    files.append(SourceFile(name=name, path=full))
        elif path.is_file():
            if is_zip(path):
                kinds.add("zip")
                zfiles, zskipped = read_zip(path, max_bytes=max_bytes, max_files=max_files)
                files.extend(zfiles)
                skipped.extend(zskipped)
            else:
                kinds.add("file" if len(paths) == 1 else "files")
                files.append(SourceFile(name=path.name, path=path))
        else:
            raise InputRefused(f"{path.name or path} does not exist")
        if len(files) > max_files:
            raise InputRefused(f"more than {max_files} input files")
    total = sum(f.path.stat().st_size if f.path is not None else len(f.data or b"") for f in files)
    if total > max_bytes:
        raise InputRefused(
            f"the input is {human_bytes(total)}, more than the limit of {human_bytes(max_bytes)}"
        )
    if not files:
        raise InputRefused("no files found in the input")
    kind = kinds.pop() if len(kinds) == 1 else "mixed"
    return Sources(files=files, kind=kind, skipped=skipped)
