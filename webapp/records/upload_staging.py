"""Upload staging for CT imports: uploaded files are written under the staging folder
(never the client's names), imported, and kept for a series choice only as long as the
session holds their token. Refusal messages name the client's files."""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.http import Http404

from webapp.core.audit import record
from webapp.core.models import AuditEvent

log = logging.getLogger(__name__)

A = AuditEvent.Action

STAGING_SESSION_KEY = "records_ct_staging"
STAGING_MAX_AGE_S = 2 * 3600


def staging_root() -> Path:
    root = Path(
        getattr(settings, "ORTHOFUSE_STAGING_DIR", "")
        or Path(tempfile.gettempdir()) / "orthofuse-staging"
    )
    root.mkdir(parents=True, exist_ok=True)
    return root


def purge_stale_staging(root: Path) -> None:
    cutoff = time.time() - STAGING_MAX_AGE_S
    for child in root.iterdir():
        try:
            if child.is_dir() and child.stat().st_mtime < cutoff:
                shutil.rmtree(child, ignore_errors=True)
        except OSError:
            continue


_SAFE_SUFFIXES = (".nii.gz", ".nii", ".zip", ".dcm", ".png")


def safe_suffix(name: str | None) -> str:
    """The recognised suffix of a client file name, or '' (the rest of the name is ignored)."""
    lowered = (name or "").lower()
    return next((ext for ext in _SAFE_SUFFIXES if lowered.endswith(ext)), "")


def write_uploads(files, folder: Path) -> list[Path]:
    """Write uploads under generated names (``upload-00001.dcm``); returns the paths."""
    paths = []
    for index, upload in enumerate(files, start=1):
        path = folder / f"upload-{index:05d}{safe_suffix(upload.name)}"
        with path.open("wb") as handle:
            for chunk in upload.chunks():
                handle.write(chunk)
        paths.append(path)
    return paths


_GENERATED_NAME = re.compile(r"upload-(\d{5})(?:\.nii\.gz|\.nii|\.zip|\.dcm|\.png)?")


def display_name(name: str | None) -> str:
    """A client file name for messages only: last path part, printable, at most 80 chars."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return base[:80] or "unnamed file"


def with_client_names(message: str, names: list[str]) -> str:
    """Replace generated names (``upload-00003.dcm``) in a message by the user's names."""

    def swap(match: re.Match) -> str:
        index = int(match.group(1)) - 1
        return f"'{names[index]}'" if 0 <= index < len(names) else match.group(0)

    return _GENERATED_NAME.sub(swap, message)


def import_ct_files(paths, patient, user, *, series_uid=None, deidentify=False, description=""):
    from webapp.records.ct_import import import_ct_study

    # One file (a .zip, a NIfTI or a single DICOM) goes in as a path, several as a list.
    sources = paths[0] if len(paths) == 1 else list(paths)
    return import_ct_study(
        sources,
        patient,
        user=user,
        series_uid=series_uid,
        deidentify=deidentify,
        description=description,
    )


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


def run_ct_import(request, patient, paths, *, series_uid, deidentify, description):
    """Run the importer. Returns ('ok', study) | ('multiple', series) | ('refused', message)."""
    from webapp.records.ct_import import ImportRefused, MultipleSeries

    try:
        study = import_ct_files(
            paths,
            patient,
            request.user,
            series_uid=series_uid,
            deidentify=deidentify,
            description=description,
        )
    except MultipleSeries as exc:
        rows = series_rows(getattr(exc, "series", []))
        if rows:
            return "multiple", rows
        return "refused", refusal_message(exc)
    except ImportRefused as exc:
        return "refused", refusal_message(exc)
    except (ValueError, OSError, MemoryError) as exc:
        log.warning("CT import refused: %s", exc)
        return "refused", refusal_message(exc)
    record(
        request,
        A.CREATE,
        patient=patient,
        obj=study,
        detail=f"CT web upload{' (de-identified)' if deidentify else ''}: {len(paths)} file(s)",
    )
    return "ok", study



def staged_upload(request, token: str) -> tuple[dict, Path]:
    staging = request.session.get(STAGING_SESSION_KEY, {})
    entry = staging.get(token)
    if entry is None or not token.replace("-", "").replace("_", "").isalnum():
        raise Http404("upload not found")
    folder = staging_root() / token
    if not folder.is_dir():
        staging.pop(token, None)
        request.session[STAGING_SESSION_KEY] = staging
        raise Http404("upload expired")
    return entry, folder


def forget_staged(request, token: str) -> None:
    staging = request.session.get(STAGING_SESSION_KEY, {})
    staging.pop(token, None)
    request.session[STAGING_SESSION_KEY] = staging
    shutil.rmtree(staging_root() / token, ignore_errors=True)


