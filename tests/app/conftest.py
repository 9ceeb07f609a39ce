"""App tests: offscreen Qt by default, private data/config/runtime folders, X servers on demand.

Qt reads QT_QPA_PLATFORM when pytest-qt's session-wide QApplication is created, so it is set
here at import time.  Tests that need a real X screen run the app in a subprocess (see
``snip_driver.py``) against an Xvfb or Xorg-dummy server started by the fixtures below.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ["QT_QPA_PLATFORM"] = "offscreen"
os.environ.pop("QT_SCALE_FACTOR", None)
os.environ.pop("QT_SCREEN_SCALE_FACTORS", None)

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"


@pytest.fixture(autouse=True)
def app_dirs(tmp_path, monkeypatch):
    """Every test gets its own data, config and runtime folders; no test touches the real ones."""
    runtime = Path(tempfile.mkdtemp(prefix="i2l-"))  # short: socket paths have a length limit
    monkeypatch.setenv("IM2LATEX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("IM2LATEX_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("IM2LATEX_RUNTIME_DIR", str(runtime / "run"))
    monkeypatch.delenv("DISPLAY", raising=False)        # offscreen: pyperclip must not find X
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("XDG_SESSION_TYPE", raising=False)
    yield {"data": tmp_path / "data", "config": tmp_path / "config", "runtime": runtime / "run"}
    shutil.rmtree(runtime, ignore_errors=True)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


# ---------------------------------------------------------------------------- X servers
@dataclass
class XServer:
    display: str
    process: subprocess.Popen
    kind: str
    log: Path

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a Qt program on this display (xcb, no inherited scaling)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("QT_") and k not in ("WAYLAND_DISPLAY", "XDG_SESSION_TYPE")}
        env.update(DISPLAY=self.display, QT_QPA_PLATFORM="xcb")
        env.update(extra)
        return env

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), env=self.env(), capture_output=True, text=True, timeout=20, check=True)


def _start_x(command: list[str], kind: str, log: Path) -> XServer:
    """Start an X server that picks a free display itself (-displayfd) and wait until it answers."""
    read_fd, write_fd = os.pipe()
    with open(log, "ab") as out:
        process = subprocess.Popen(command + ["-displayfd", str(write_fd)], pass_fds=(write_fd,),
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    os.close(write_fd)
    number = b""
    deadline = time.monotonic() + 20
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        while not number.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([pipe], [], [], left)[0]:
                break   # a server that neither answers nor exits (no permission for a VT, ...)
            chunk = pipe.read(16)
            if not chunk:
                break   # it exited
            number += chunk
    if not number.strip():
        process.kill()
        process.wait(5)
        pytest.skip(f"{kind} did not start (see {log})")
    return XServer(f":{number.decode().strip()}", process, kind, log)


def _stop_x(server: XServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(5)


@pytest.fixture(scope="session")
def xvfb(tmp_path_factory):
    """One 1280x800 Xvfb screen."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed")
    log = tmp_path_factory.mktemp("xvfb") / "xvfb.log"
    server = _start_x(["Xvfb", "-screen", "0", "1280x800x24", "-nolisten", "tcp", "-noreset"], "Xvfb", log)
    yield server
    _stop_x(server)


DUMMY_CONF = """\
Section "Device"
  Identifier "dummy"
  Driver "dummy"
  VideoRam 256000
EndSection
Section "Monitor"
  Identifier "m0"
  HorizSync 5.0 - 1000.0
  VertRefresh 5.0 - 200.0
EndSection
Section "Screen"
  Identifier "s0"
  Device "dummy"
  Monitor "m0"
  DefaultDepth 24
  SubSection "Display"
    Depth 24
    Virtual 4096 2160
  EndSubSection
EndSection
"""


@pytest.fixture(scope="session")
def xorg_two_monitors(tmp_path_factory):
    """Xorg with the dummy driver: DUMMY0 1024x768 at (0,0) and DUMMY1 800x600 at (1024,0)."""
    if shutil.which("Xorg") is None or shutil.which("xrandr") is None:
        pytest.skip("Xorg or xrandr is not installed")
    if not Path("/usr/lib/xorg/modules/drivers/dummy_drv.so").exists():
        pytest.skip("the X.Org dummy video driver is not installed")
    folder = tmp_path_factory.mktemp("xorg")
    conf = folder / "dummy.conf"
    conf.write_text(DUMMY_CONF)
    log = folder / "xorg.log"
    server = _start_x(["Xorg", "-noreset", "-nolisten", "tcp", "-config", str(conf), "-logfile", str(log)], "Xorg", folder / "xorg.out")
    try:
        server.run("xrandr", "--output", "DUMMY0", "--mode", "1024x768", "--pos", "0x0")
        server.run("xrandr", "--newmode", "800x600_60", "38.25", "800", "832", "912", "1024", "600", "603", "607", "624", "-hsync", "+vsync")
        server.run("xrandr", "--addmode", "DUMMY1", "800x600_60")
        server.run("xrandr", "--output", "DUMMY1", "--mode", "800x600_60", "--pos", "1024x0")
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        _stop_x(server)
        pytest.skip(f"could not lay out two dummy monitors: {error}")
    yield server
    _stop_x(server)
