"""C-STORE failure statuses: a refusal carries a status code and a one-line reason.

Codes (all failures; PS3.4 Annex B: 0xA9xx "data set does not match SOP class",
0xCxxx "cannot understand"):

* 0xA900 the data set does not match its SOP class (e.g. a CT SOP class with Modality MR)
* 0xC000 malformed: the data set cannot be parsed
* 0xC001 unsupported SOP class or modality (not an X-ray or CT image)
* 0xC002 pixel data refused: too large, forged size (a pixel bomb) or undecodable
* 0xC003 refused by the import (geometry, photometric interpretation, ...)
* 0xC004 missing or conflicting identifiers (PatientID, series or instance UID)
* 0xC0FF internal error while storing (logged; nothing stored)
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from refusal import Refused

DOES_NOT_MATCH = 0xA900
MALFORMED = 0xC000
UNSUPPORTED = 0xC001
PIXELS_REFUSED = 0xC002
IMPORT_REFUSED = 0xC003
IDENTIFIERS = 0xC004
INTERNAL = 0xC0FF

ERROR_COMMENT_MAX = 64  # LO value representation


class StoreRefused(Refused):
    """An instance the node will not store; ``message`` is one line naming the problem and
    ``status`` the C-STORE failure status that answers it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = int(status)
        self.mrn = ""  # the instance's PatientID, when it could be read


def error_comment(message: str) -> str:
    """The Error Comment (LO, at most 64 ASCII characters) for a refusal message."""
    text = " ".join(message.split()).encode("ascii", "replace").decode("ascii")
    text = text.replace("\\", "/")
    if len(text) <= ERROR_COMMENT_MAX:
        return text
    return text[: ERROR_COMMENT_MAX - 3].rstrip() + "..."


def failure(refused: StoreRefused) -> Dataset:
    """The C-STORE response status data set for ``refused``."""
    ds = Dataset()
    ds.Status = refused.status
    ds.ErrorComment = error_comment(refused.message)
    return ds
