"""Starting CT and X-ray imports from the site (pages and API) as jobs.

The request only does cheap checks (the forms' size limits and required fields, the patient's
access in the caller, the file type from the first bytes), stages the files
(:mod:`webapp.records.upload_staging`) and submits an ``import_ct`` / ``import_xray`` job on
the cpu queue; :mod:`webapp.records.jobs` does the import."""

from __future__ import annotations

import struct

from django.http import HttpRequest

from refusal import Refused
from webapp.jobs.models import Job
from webapp.jobs.services import submit_job
from webapp.records.upload_staging import (
    StagedUpload,
    display_name,
    purge_stale_staging,
    stage_uploads,
    staged_tokens,
)

CT_JOB = "import_ct"
XRAY_JOB = "import_xray"
IMPORT_JOBS = (CT_JOB, XRAY_JOB)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
NIFTI_SUFFIXES = (".nii", ".nii.gz")


class UploadRefused(Refused):
    """The upload is not what the form asks for; the message names the user's file."""


def _head(upload, size: int = 132) -> bytes:
    upload.seek(0)
    head = upload.read(size)
    upload.seek(0)
    return head


def looks_like_dicom(head: bytes) -> bool:
    """A Part 10 file (``DICM`` after the preamble) or a bare data set that starts with a
    low group tag (0002-0028, little endian), as old modalities write them."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    if len(head) < 8:
        return False
    (group,) = struct.unpack("<H", head[:2])
    return group % 2 == 0 and 0x0002 <= group <= 0x0028


def _looks_like_ct_input(name: str, head: bytes) -> bool:
    """Whether the importer could take the file: a NIfTI by its suffix (the importer says
    what is wrong with it), a zip archive by its magic number (whatever its name, as the
    importer decides), or a DICOM file."""
    if name.lower().endswith(NIFTI_SUFFIXES):
        return True
    return head[:4] == ZIP_MAGIC or looks_like_dicom(head)


def check_ct_files(files) -> None:
    """Refuse an upload in which no file can be CT input, with the importer's own message;
    single non-DICOM files in a series are left to the importer, which skips them."""
    if any(_looks_like_ct_input(upload.name or "", _head(upload)) for upload in files):
        return
    if len(files) == 1:
        raise UploadRefused(f"'{display_name(files[0].name)}' is not a DICOM or NIfTI file")
    raise UploadRefused(f"no DICOM files among the {len(files)} input files")


def check_xray_file(upload) -> None:
    """Refuse a file that is neither PNG nor DICOM, with the importer's own message."""
    head = _head(upload)
    if head[:8] != PNG_MAGIC and not looks_like_dicom(head):
        raise UploadRefused(f"'{display_name(upload.name)}' is not a DICOM or PNG file")


def _awaits_choice(job: Job) -> bool:
    return job.status == Job.Status.SUCCEEDED and (job.result or {}).get("outcome") == (
        "choose_series"
    )


def _purge() -> None:
    """Remove staged uploads no job will read: at once those whose newest import job ended
    without waiting for a series choice (e.g. cancelled before a worker took it), after a
    day the others (a series choice never made, a lost request), never those of jobs still
    waiting or running."""
    keep, ended = set(), set()
    for token in staged_tokens():
        job = (
            Job.objects.filter(kind__in=IMPORT_JOBS, params__staging=token)
            .order_by("-created_at", "-id")
            .first()
        )
        if job is None:
            continue  # a request still staging it, or one that failed before its job: by age
        if not job.is_finished:
            keep.add(token)
        elif not _awaits_choice(job):
            ended.add(token)
    purge_stale_staging(keep=keep, ended=ended)


def _submit(kind: str, staged: StagedUpload, params: dict, *, patient, request) -> Job:
    try:
        return submit_job(
            kind, params={**staged.params(), **params}, patient=patient, request=request
        )
    except BaseException:
        staged.discard()
        raise


def start_ct_import(
    *, patient, files, description: str, deidentify: bool, request: HttpRequest
) -> Job:
    """Stage ``files`` and queue their import as a CT study of ``patient``."""
    check_ct_files(files)
    _purge()
    staged = stage_uploads(files)
    params = {"description": description, "deidentify": bool(deidentify), "series_uid": ""}
    return _submit(CT_JOB, staged, params, patient=patient, request=request)


def start_xray_import(*, patient, upload, carm, description: str, request: HttpRequest) -> Job:
    """Stage ``upload`` and queue its import as an X-ray of ``patient``."""
    check_xray_file(upload)
    _purge()
    staged = stage_uploads([upload])
    params = {"carm_id": carm.pk if carm else None, "description": description}
    return _submit(XRAY_JOB, staged, params, patient=patient, request=request)


def series_choice_job(*, patient, token: str, user) -> Job | None:
    """The finished job that found several series in upload ``token`` and waits for the
    user's choice, or None (unknown, another user's, already chosen, or files gone)."""
    job = (
        Job.objects.filter(kind=CT_JOB, patient=patient, params__staging=token)
        .order_by("-created_at", "-id")
        .first()
    )
    if job is None or job.created_by_id != getattr(user, "pk", None):
        return None
    if not _awaits_choice(job):
        return None
    try:
        staged = StagedUpload.from_params(job.params)
    except ValueError:
        return None
    return job if staged.exists() else None


def start_series_import(*, choice_job: Job, series_uid: str, request: HttpRequest) -> Job:
    """Queue the import of the chosen series of a staged multi-series upload."""
    params = {**choice_job.params, "series_uid": series_uid}
    return submit_job(CT_JOB, params=params, patient=choice_job.patient, request=request)


def cancel_series_choice(choice_job: Job) -> None:
    StagedUpload.from_params(choice_job.params).discard()
