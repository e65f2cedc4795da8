"""Model files in Django storage: a model folder is uploaded file by file under its
storage prefix and downloaded to a temporary folder to be used (workers get no paths)."""

from __future__ import annotations

from pathlib import Path

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from webapp.xray_registration.models import RegistrationModel
from webapp.xray_registration.services.common import RegistrationRefused

MODEL_FILES = ("model.json", "weights.pt")
MODEL_PREFIX = "registration-models"


def upload_model_dir(model: RegistrationModel, folder: Path) -> None:
    for name in MODEL_FILES:
        key = f"{model.storage_prefix}/{name}"
        if default_storage.exists(key):
            default_storage.delete(key)
        saved = default_storage.save(key, ContentFile((folder / name).read_bytes()))
        if saved != key:  # storage renamed it: keep the folder consistent
            default_storage.delete(saved)
            raise RegistrationRefused(f"could not store the model file {name} under {key}")


def download_model_dir(model: RegistrationModel, folder: Path) -> Path:
    """Copy a ready model's files from storage into ``folder`` (returned)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        key = f"{model.storage_prefix}/{name}"
        if not default_storage.exists(key):
            raise RegistrationRefused(f"the model #{model.pk} file {name} is missing from storage")
        with default_storage.open(key, "rb") as src:
            (folder / name).write_bytes(src.read())
    return folder


def delete_model_files(model: RegistrationModel) -> None:
    for name in MODEL_FILES:
        key = f"{model.storage_prefix}/{name}"
        if model.storage_prefix and default_storage.exists(key):
            default_storage.delete(key)
