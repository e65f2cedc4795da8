"""The one refusal type of OrthoFuse (no Django imports).

Bad input from a user, a device or a file (a malformed DICOM, an X-ray whose camera is
unknown, a phantom that cannot be identified, a pose that is not rigid, a plan with a
trajectory outside the image) raises a subclass of :class:`Refused` whose one-line
``message`` names the problem in words the user can act on. Pages, commands and the API
show that message (the API answers 400); any other exception is a bug of ours and is
never reported to the user as their mistake.
"""

from __future__ import annotations


class Refused(ValueError):
    """Bad input; ``message`` (one line) says what is wrong."""

    def __init__(self, message: object = "") -> None:
        text = " ".join(str(message).split()) or type(self).__name__
        super().__init__(text)
        self.message = text

    def __str__(self) -> str:
        return self.message
