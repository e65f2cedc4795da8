"""Upload staging for CT and X-ray imports that run as jobs.

The web request writes the uploaded files into Django's default storage under
``staging/uploads/<token>/upload-00001.dcm`` (generated names only, never the client's),
and the import job fetches them into a private temporary folder, imports them and deletes
them. A CT upload that holds several series keeps its staged files until the user chose one
(a follow-up job takes them over) or cancelled; :func:`purge_stale_staging` removes folders
left behind by jobs that were lost. Refusal messages name the client's files."""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.core.files.storage import default_storage

log = logging.getLogger(__name__)

STAGING_PREFIX = "staging/uploads"
STAGING_MAX_AGE_S = 24 * 3600
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")
_CHUNK = 1 << 20

_SAFE_SUFFIXES = (".nii.gz", ".nii", ".zip", ".dcm", ".png")


def safe_suffix(name: str | None) -> str:
    """The recognised suffix of a client file name, or '' (the rest of the name is ignored)."""
    lowered = (name or "").lower()
    return next((ext for ext in _SAFE_SUFFIXES if lowered.endswith(ext)), "")


def valid_token(token: str) -> bool:
    return bool(_TOKEN.fullmatch(token or ""))


@dataclass
class StagedUpload:
    """Files of one upload in storage: ``files`` are storage names, ``names`` the client's
    display names (same order)."""

    token: str
    files: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def params(self) -> dict:
        return {"staging": self.token, "files": list(self.files), "names": list(self.names)}

    @classmethod
    def from_params(cls, params: dict) -> StagedUpload:
        """The staged upload a job's parameters name; ``ValueError`` when they are malformed
        or point outside this upload's folder."""
        token = str(params.get("staging") or "")
        files = [str(name) for name in params.get("files") or []]
        names = [str(name) for name in params.get("names") or []]
        if not valid_token(token) or not files:
            raise ValueError("the job does not name a staged upload")
        folder = f"{STAGING_PREFIX}/{token}/"
        if any(not name.startswith(folder) or ".." in name for name in files):
            raise ValueError("the job names files outside its staged upload")
        return cls(token=token, files=files, names=names)

    def exists(self) -> bool:
        return all(default_storage.exists(name) for name in self.files)

    def fetch(self, folder: Path) -> list[Path]:
        """Copy the staged files into the local ``folder`` (chunked); returns their paths.
        ``FileNotFoundError`` when one is gone."""
        paths = []
        for name in self.files:
            path = folder / Path(name).name
            with default_storage.open(name, "rb") as source, path.open("wb") as target:
                while chunk := source.read(_CHUNK):
                    target.write(chunk)
            paths.append(path)
        return paths

    def discard(self) -> None:
        """Delete the staged files (and the folder where storage has folders)."""
        for name in self.files:
            try:
                default_storage.delete(name)
            except OSError as exc:
                log.warning("could not delete staged file %s: %s", name, exc)
        _remove_empty_folder(f"{STAGING_PREFIX}/{self.token}")


def _remove_empty_folder(name: str) -> None:
    try:
        path = Path(default_storage.path(name))
    except NotImplementedError:
        return  # object storage: no folders
    try:
        path.rmdir()
    except OSError:
        pass


def stage_uploads(files) -> StagedUpload:
    """Write uploaded files to storage under generated names; returns the staged upload."""
    staged = StagedUpload(token=secrets.token_urlsafe(24))
    try:
        for index, upload in enumerate(files, start=1):
            name = f"{STAGING_PREFIX}/{staged.token}/upload-{index:05d}{safe_suffix(upload.name)}"
            staged.files.append(default_storage.save(name, upload))
            staged.names.append(display_name(upload.name))
    except BaseException:
        staged.discard()
        raise
    return staged


def staged_tokens() -> list[str]:
    """Tokens of the staged uploads in storage ([] where storage cannot list folders)."""
    try:
        tokens, _files = default_storage.listdir(STAGING_PREFIX)
    except (OSError, NotImplementedError):
        return []
    return [token for token in tokens if valid_token(token)]


def purge_stale_staging(
    *,
    keep: set[str] = frozenset(),
    ended: set[str] = frozenset(),
    max_age_s: float = STAGING_MAX_AGE_S,
) -> None:
    """Delete staged uploads older than ``max_age_s`` except the tokens in ``keep`` (those of
    jobs still waiting or running), and those in ``ended`` (no job will read them) whatever
    their age. Best effort: storage errors are logged, never raised."""
    cutoff = time.time() - max_age_s
    for token in staged_tokens():
        if token in keep:
            continue
        folder = f"{STAGING_PREFIX}/{token}"
        try:
            names = [f"{folder}/{name}" for name in default_storage.listdir(folder)[1]]
            if (
                token not in ended
                and names
                and max(default_storage.get_modified_time(n).timestamp() for n in names) > cutoff
            ):
                continue
        except (OSError, NotImplementedError) as exc:
            log.warning("staging purge skipped %s: %s", folder, exc)
            continue
        StagedUpload(token=token, files=names).discard()


# A generated name, with the server folder it was read from when a reader quotes the path.
_GENERATED_NAME = re.compile(
    r"(?:[^\s\"'()]*[/\\])?upload-(\d{5})(?:\.nii\.gz|\.nii|\.zip|\.dcm|\.png)?"
)


def display_name(name: str | None) -> str:
    """A client file name for messages only: last path part, printable, at most 80 chars."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return base[:80] or "unnamed file"


def with_client_names(message: str, names: list[str]) -> str:
    """Replace generated names (``upload-00003.dcm``, with any server folder before them) in a
    message by the user's names: a message never shows a server path."""

    def swap(match: re.Match) -> str:
        index = int(match.group(1)) - 1
        return f"'{names[index]}'" if 0 <= index < len(names) else match.group(0)

    return _GENERATED_NAME.sub(swap, message)


def series_rows(series) -> list[dict]:
    """The importer's series list as plain JSON-able rows with a ``uid`` key."""
    rows = []
    for item in series or []:
        item = dict(item)
        item["uid"] = str(item.get("uid") or item.get("series_uid") or "")
        rows.append(json.loads(json.dumps(item, default=str)))
    return [row for row in rows if row["uid"]]


def refusal_message(exc: Exception) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return str(message).splitlines()[0][:500]
