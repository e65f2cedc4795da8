"""Registration site services, one concept per module (thin layers over
:mod:`registration.engine`):

- :mod:`.common`: ``RegistrationRefused``, one-line messages, the compute device;
- :mod:`.prepared_xray`: the X-ray's pixels and camera (through :mod:`webapp.xray_view`),
  dewarped first when needed, and the camera to train with;
- :mod:`.model_store`: model files in Django storage;
- :mod:`.training`: queueing and running a model's training;
- :mod:`.running`: queueing and running a registration, and storing its results.

Reviews and reviewer landmarks live in :mod:`webapp.review.decisions`.
"""

from webapp.xray_registration.services.common import RegistrationRefused, device_name, one_line
from webapp.xray_registration.services.model_store import (
    MODEL_FILES,
    MODEL_PREFIX,
    delete_model_files,
    download_model_dir,
    upload_model_dir,
)
from webapp.xray_registration.services.prepared_xray import (
    DEFAULT_CAMERA,
    PreparedXray,
    prepare_xray,
    training_camera,
    xray_camera,
    xray_display_png,
)
from webapp.xray_registration.services.running import (
    header_initial_pose,
    mark_failed,
    render_pictures,
    run_registration,
    settle_if_job_ended,
    start_registration,
    true_target_error,
)
from webapp.xray_registration.services.training import (
    PRESETS,
    latest_ready_model,
    run_training,
    start_training,
)

__all__ = [
    "DEFAULT_CAMERA",
    "MODEL_FILES",
    "MODEL_PREFIX",
    "PRESETS",
    "PreparedXray",
    "RegistrationRefused",
    "delete_model_files",
    "device_name",
    "download_model_dir",
    "header_initial_pose",
    "latest_ready_model",
    "mark_failed",
    "one_line",
    "prepare_xray",
    "render_pictures",
    "run_registration",
    "run_training",
    "settle_if_job_ended",
    "start_registration",
    "start_training",
    "training_camera",
    "true_target_error",
    "upload_model_dir",
    "xray_camera",
    "xray_display_png",
]
