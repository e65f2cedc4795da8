"""Collecting input files safely: single files, folders, lists of files and .zip archives.

No Django imports. File names are never trusted: zip members are read into memory under
their index, members whose names are absolute or contain ``..`` are skipped, the total
uncompressed size is bounded (zip bombs) and counted while reading (declared sizes can lie).
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

from dicomio.errors import InputRefused

DEFAULT_MAX_BYTES = 1024 * 1024 * 1024  # 1 GiB uncompressed in total
DEFAULT_MAX_FILES = 20000


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


def read_zip(path: Path, *, max_bytes: int, max_files: int) -> tuple[list[SourceFile], list[str]]:
    """Read the members of a zip archive into memory, bounded by ``max_bytes`` in total."""
    files: list[SourceFile] = []
    skipped: list[str] = []
    total = 0
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InputRefused(f"{path.name} is not a readable zip archive ({exc})") from None
    with archive:
        infos = [info for info in archive.infolist() if not info.is_dir()]
        if len(infos) > max_files:
            raise InputRefused(
                f"the zip archive holds {len(infos)} files, more than the limit of {max_files}"
            )
        declared = sum(info.file_size for info in infos)
        if declared > max_bytes:
            raise InputRefused(
                f"the zip archive expands to {human_bytes(declared)}, more than the limit of "
                f"{human_bytes(max_bytes)}"
            )
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
            chunks = []
            try:
                with archive.open(info) as member:
                    while True:
                        chunk = member.read(1 << 20)
                        if not chunk:
                            break
                        total += len(chunk)
                        if total > max_bytes:
                            raise InputRefused(
                                f"the zip archive expands to more than the limit of {human_bytes(max_bytes)}"
                            )
                        chunks.append(chunk)
            except InputRefused:
                raise
            except (
                zipfile.BadZipFile,
                OSError,
                EOFError,
                NotImplementedError,
                RuntimeError,
            ) as exc:
                raise InputRefused(f"zip member #{index + 1} cannot be read ({exc})") from None
            files.append(
                SourceFile(name=f"zip member #{index + 1} ({base})", data=b"".join(chunks))
            )
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
