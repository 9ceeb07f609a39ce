"""History and settings survive the app being killed mid-write, again and again.

A subprocess writes history entries (and settings) in a loop through the app's real modules and
prints one line after each write returns; the test SIGKILLs it at random moments, 20 times in a
row, each time continuing the same history.  Afterwards the history must open without complaint
and hold every entry whose write completed; the settings must be the last completed save or the
one in flight.  Then a file damaged some other way is set aside and the user told.
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from im2latex_desktop.history import History
from im2latex_desktop.settings import SettingsStore

REPO = Path(__file__).resolve().parents[2]
KILLS = 20

WRITER = r"""
import sys
from PIL import Image
from im2latex_desktop.history import History
from im2latex_desktop.settings import Settings, SettingsStore

run = sys.argv[1]
history = History(max_entries=10**6)
history.load()
store = SettingsStore()
store.load()          # as the app does at start
print("OPENED" if history.message is None and store.message is None
      else f"MESSAGE {history.message} {store.message}", flush=True)
picture = Image.new("RGB", (300, 60), "white")
padding = "\\frac{a}{b}+" * 40   # entries of a realistic size: the file grows to a few hundred KB
i = 0
while True:
    latex = f"{run}-{i} {padding}"
    history.add(latex, 0.5, picture if i % 4 == 0 else None, "snip")
    print("WROTE", f"{run}-{i}", flush=True)
    beam = i % 10 + 1
    print("SAVING", beam, flush=True)
    store.save(Settings(beam_width=beam))
    print("SAVED", beam, flush=True)
    i += 1
"""


class Lines:
    """The writer's output, line by line, read without blocking past a deadline."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.fd = process.stdout.fileno()
        self.lines: list[str] = []
        self.buffer = b""
        self.closed = False

    def read(self, seconds: float, stop=lambda lines: False) -> list[str]:
        deadline = time.monotonic() + seconds
        while not self.closed and not stop(self.lines):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if select.select([self.fd], [], [], min(left, 0.05))[0]:
                chunk = os.read(self.fd, 65536)
                self.closed = not chunk
                *complete, self.buffer = (self.buffer + chunk).split(b"\n")
                self.lines += [line.decode() for line in complete]
        return self.lines


def test_history_and_settings_survive_repeated_sigkill(app_dirs):
    rng = random.Random(10)
    env = dict(os.environ, PYTHONPATH=str(REPO), IM2LATEX_DATA_DIR=str(app_dirs["data"]),
               IM2LATEX_CONFIG_DIR=str(app_dirs["config"]))
    completed: list[str] = []
    in_flight: list[str] = []   # the entry each killed run may have written without saying so
    settings_options: set[int] = set()
    kills_during_writes = 0  # kills that landed inside a save, not between two
    runs_leaving_temporaries = 0
    stale: set[Path] = set()  # half-written files the last kill left
    for run in range(KILLS):
        process = subprocess.Popen([sys.executable, "-c", WRITER, f"r{run}"], cwd=REPO, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        output = Lines(process)
        try:
            output.read(60, stop=lambda lines: any(line.startswith("WROTE") for line in lines))
            assert output.lines and output.lines[0] == "OPENED", \
                f"run {run}: {output.lines[:1]} {process.stderr.read().decode() if process.poll() is not None else ''}"
            assert not any(path.exists() for path in stale), "opening the history clears crashed saves' files"
            output.read(rng.uniform(0.0, 0.5))
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            lines = output.read(5)  # what it printed before dying
        finally:
            if process.poll() is None:
                process.kill()
            process.stderr.close()
            process.stdout.close()
        stale = set(app_dirs["data"].glob("history.json*.tmp")) | set(app_dirs["config"].glob("*.tmp"))
        runs_leaving_temporaries += bool(stale)
        wrote = [line.split()[1] for line in lines if line.startswith("WROTE")]
        completed += wrote
        last = int(wrote[-1].rsplit("-", 1)[1])
        in_flight.append(f"r{run}-{last + 1}")
        if lines[-1].startswith(("SAVED", "SAVING", "OPENED")):  # killed inside a history or settings save
            kills_during_writes += 1
        saved = [int(line.split()[1]) for line in lines if line.startswith("SAVED")]
        saving = [int(line.split()[1]) for line in lines if line.startswith("SAVING")]
        settings_options = ({saved[-1]} if saved else settings_options) | ({saving[-1]} if saving else set())

    assert runs_leaving_temporaries > 0, "some kills should land while a temporary file is open"
    history = History()
    entries = history.load()
    assert history.message is None
    assert not list(app_dirs["data"].glob("*.tmp")), "half-written files of crashed saves are cleared"
    held = {entry.latex.split(" ", 1)[0] for entry in entries}
    missing = [name for name in completed if name not in held]
    assert not missing, f"{len(missing)} completed writes lost, e.g. {missing[:3]}"
    assert held - set(completed) <= set(in_flight)   # at most the unconfirmed write of each run
    assert len(completed) >= KILLS
    for entry in entries:
        if entry.thumbnail:
            assert history.thumbnail_path(entry) is not None
    store = SettingsStore()
    settings = store.load()
    assert store.message is None and settings.beam_width in settings_options
    assert not list(app_dirs["config"].glob("*.tmp"))
    assert kills_during_writes >= KILLS // 4, "the kills should land inside writes, not only between them"

    # A file damaged some other way (a disk error, another program) is set aside and reported.
    path = app_dirs["data"] / "history.json"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    damaged = History()
    assert damaged.load() == []
    assert "damaged" in damaged.message and "moved" in damaged.message
    [aside] = list(path.parent.glob("history.json.corrupt-*"))
    assert aside.read_bytes() == data[: len(data) // 2]
    damaged.add("x", 1.0)
    assert json.loads(path.read_text())["entries"][0]["latex"] == "x"
