"""A throw-away Orthanc (Debian package ``orthanc``) on loopback ports, for peer tests.

``start_orthanc(folder)`` returns a running :class:`Orthanc` or raises
:class:`OrthancUnavailable` naming why (not installed, did not start in time).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_S = 30.0
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


class OrthancUnavailable(RuntimeError):
    """Orthanc cannot be used here; the message says why (tests skip with it)."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Orthanc:
    process: subprocess.Popen
    http_port: int
    dicom_port: int
    aet: str = "ORTHANC"

    @property
    def dicomweb_url(self) -> str:
        """The DICOMweb base URL (when started with ``dicomweb=True``)."""
        return f"http://127.0.0.1:{self.http_port}/dicom-web"

    def request(self, method: str, path: str, body: bytes | dict | list | None = None):
        """One REST call; JSON in and out (bytes bodies go as they are)."""
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}{path}", data=data, method=method
        )
        with urllib.request.urlopen(req, timeout=120) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def upload(self, path: Path) -> str:
        """Store a DICOM file in Orthanc; returns its Orthanc instance id."""
        return self.request("POST", "/instances", path.read_bytes())["ID"]

    def add_modality(self, name: str, aet: str, port: int) -> None:
        self.request("PUT", f"/modalities/{name}",
                     {"AET": aet, "Host": "127.0.0.1", "Port": port})

    def echo(self, name: str) -> bool:
        try:
            self.request("POST", f"/modalities/{name}/echo", {})
            return True
        except urllib.error.HTTPError:
            return False

    def send(self, name: str, resources: list[str]) -> dict:
        """C-STORE the resources to modality ``name`` (synchronously); raises HTTPError
        when the peer answers a failure status."""
        return self.request("POST", f"/modalities/{name}/store",
                            {"Resources": resources, "Synchronous": True})

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_orthanc(folder: Path, *, dicomweb: bool = False) -> Orthanc:
    """Start Orthanc with its storage in ``folder`` on free loopback ports; ``dicomweb``
    loads the DICOMweb plugin (Debian package ``orthanc-dicomweb``) at /dicom-web/."""
    binary = shutil.which("Orthanc")
    if binary is None:
        raise OrthancUnavailable("Orthanc is not installed (Debian package 'orthanc')")
    if dicomweb and not DICOMWEB_PLUGIN.exists():
        raise OrthancUnavailable("the Orthanc DICOMweb plugin is not installed "
                                 "(Debian package 'orthanc-dicomweb')")
    folder.mkdir(parents=True, exist_ok=True)
    http_port, dicom_port = _free_port(), _free_port()
    config = {
        "Name": "OrthoFuseTestPACS",
        "StorageDirectory": str(folder / "db"),
        "IndexDirectory": str(folder / "db"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": "ORTHANC",
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "Plugins": [str(DICOMWEB_PLUGIN)] if dicomweb else [],
        "DicomWeb": {"Enable": dicomweb, "Root": "/dicom-web/"},
        "DicomModalities": {},
        "DicomModalitiesInDatabase": False,
        "HttpTimeout": 120,
        "DicomScuTimeout": 30,
        "SaveJobs": False,
    }
    config_path = folder / "orthanc.json"
    config_path.write_text(json.dumps(config))
    log = open(folder / "orthanc.log", "wb")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen([binary, str(config_path)], cwd=folder, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    orthanc = Orthanc(process, http_port, dicom_port)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = (folder / "orthanc.log").read_text(errors="replace")[-300:]
            raise OrthancUnavailable(f"Orthanc exited with {process.returncode}: {tail}")
        try:
            orthanc.request("GET", "/system")
            return orthanc
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.2)
    orthanc.stop()
    raise OrthancUnavailable(f"Orthanc did not answer on port {http_port} in {START_TIMEOUT_S} s")
