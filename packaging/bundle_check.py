"""Check a built stand-alone bundle (``make bundle-check``): it starts, answers, and reads formulas.

Runs the bundle's own executables, never this checkout's code, with the GPU hidden
(``CUDA_VISIBLE_DEVICES=""``) so the CPU path is what is tested:

1. ``im2latex-desktop --version`` and ``im2latex --version``;
2. ``im2latex predict --json`` on a formula rendered here, read by a tiny model trained here
   (tests/tiny_model.py) that must read it back exactly;
3. the bundled model, when the bundle has one, with no ``--model`` at all;
4. the app itself starts and keeps running, offscreen and on an Xvfb X server when there is one;
5. ``im2latex-desktop --install-desktop-entry`` into a temporary XDG_DATA_HOME;

then prints the bundle's size.  Exit code 0 when every step passed.

    .venv/bin/python packaging/bundle_check.py [dist/im2latex]
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


class Checker:
    def __init__(self, bundle: Path, env: dict[str, str], work: Path) -> None:
        self.bundle, self.env, self.work = bundle, env, work
        self.failures: list[str] = []

    def run(self, program: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
        start = time.perf_counter()
        result = subprocess.run([str(self.bundle / program), *args], cwd=self.work, env=self.env,
                                capture_output=True, text=True, timeout=timeout)
        print(f"$ {program} {' '.join(args)}   [{time.perf_counter() - start:.1f} s, exit {result.returncode}]")
        for line in (result.stdout.strip().splitlines() + result.stderr.strip().splitlines())[-6:]:
            print(f"    {line}")
        return result

    def app_runs(self, platform: str, display: str | None = None, seconds: float = 15.0) -> bool:
        """Start the app (Qt platform ``platform``), see it still running after ``seconds``, stop it."""
        env = dict(self.env, QT_QPA_PLATFORM=platform)
        if display:
            env["DISPLAY"] = display
        start = time.perf_counter()
        process = subprocess.Popen([str(self.bundle / "im2latex-desktop")], cwd=self.work, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            process.wait(seconds)
            alive = False
        except subprocess.TimeoutExpired:
            alive = True
            process.send_signal(signal.SIGTERM)  # the app quits cleanly on SIGTERM
        try:
            out, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            out, _ = process.communicate()
        print(f"$ im2latex-desktop (QT_QPA_PLATFORM={platform})   [{time.perf_counter() - start:.1f} s, "
              f"{'ran until stopped' if alive else 'exited by itself'}, exit {process.returncode}]")
        for line in out.strip().splitlines()[-6:]:
            print(f"    {line}")
        return alive and process.returncode == 0

    def expect(self, ok: bool, what: str) -> None:
        print(f"{'ok  ' if ok else 'FAIL'} {what}")
        if not ok:
            self.failures.append(what)


def start_xvfb() -> tuple[subprocess.Popen, str] | None:
    """An Xvfb that picks a free display itself; None when Xvfb is missing or does not start."""
    if shutil.which("Xvfb") is None:
        return None
    read_fd, write_fd = os.pipe()
    process = subprocess.Popen(["Xvfb", "-screen", "0", "1280x800x24", "-nolisten", "tcp", "-displayfd",
                                str(write_fd)], pass_fds=(write_fd,), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        ready = select.select([pipe], [], [], 20)[0]
        number = pipe.read(16).strip() if ready else b""
    if not number:
        process.kill()
        process.wait(5)
        return None
    return process, f":{number.decode()}"


def check(bundle: Path) -> int:
    from im2latex_desktop import __version__
    from tiny_model import load_tiny_info, train_tiny_model

    bundle = bundle.absolute()
    exe = bundle / "im2latex-desktop"
    if not exe.is_file():
        print(f"bundle_check: no bundle at {bundle} (run `make bundle` first).", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="im2latex-bundle-check-") as tmp:
        tmp_path = Path(tmp)
        work = tmp_path / "work"
        work.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("IM2LATEX_", "PYTHON"))}
        env.update(CUDA_VISIBLE_DEVICES="", QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path / "home"),
                   XDG_DATA_HOME=str(tmp_path / "xdg"), IM2LATEX_DATA_DIR=str(tmp_path / "data"),
                   IM2LATEX_CONFIG_DIR=str(tmp_path / "config"), IM2LATEX_RUNTIME_DIR=str(tmp_path / "run"))
        c = Checker(bundle, env, work)

        result = c.run("im2latex-desktop", "--version")
        c.expect(result.stdout.strip() == f"im2latex-desktop {__version__}", "im2latex-desktop --version")
        result = c.run("im2latex", "--version")
        c.expect(result.returncode == 0 and result.stdout.startswith("im2latex "), "im2latex --version")

        print("training the tiny test model (tests/tiny_model.py) ...")
        tiny = load_tiny_info(train_tiny_model(tmp_path / "tiny").parent)
        image = work / "formula.png"
        image.write_bytes(tiny.images[0].read_bytes())
        result = c.run("im2latex", "predict", "--json", "--device", "cpu", "--model", str(tiny.bundle), image.name)
        row = json.loads(result.stdout or "{}")
        c.expect(result.returncode == 0 and row.get("latex") == tiny.formulas[0],
                 f"predict with a model from outside reads {tiny.formulas[0]!r}")
        result = c.run("im2latex-desktop", "predict", "--json", "--model", str(tiny.bundle), image.name)
        c.expect(result.returncode == 0 and json.loads(result.stdout or "{}").get("latex") == tiny.formulas[0],
                 "im2latex-desktop predict (the same program as the app)")

        bundled = bundle / "_internal" / "resources" / "model"
        result = c.run("im2latex", "predict", "--json", image.name)
        if (bundled / "model.pt").is_file():
            row = json.loads(result.stdout or "{}")
            c.expect(result.returncode == 0 and isinstance(row.get("latex"), str),
                     f"predict with the bundled model: {row.get('latex')!r}")
        else:
            print(f"note: this bundle has no model ({bundled} is missing): built before resources/model/ existed")
            c.expect(result.returncode == 2 and "No model found" in result.stderr,
                     "predict without a model says so clearly")

        c.expect(c.app_runs("offscreen"), "the app starts and keeps running (offscreen)")
        xvfb = start_xvfb()
        if xvfb is None:
            print("note: no Xvfb here, so the X11 (xcb) start was not checked")
        else:
            try:
                c.expect(c.app_runs("xcb", display=xvfb[1]), f"the app starts on an X server ({xvfb[1]})")
            finally:
                xvfb[0].terminate()
                xvfb[0].wait(10)

        result = c.run("im2latex-desktop", "--install-desktop-entry")
        desktop = tmp_path / "xdg" / "applications" / "im2latex-desktop.desktop"
        c.expect(result.returncode == 0 and desktop.is_file()
                 and f"Exec={exe.resolve()}" in desktop.read_text(encoding="utf-8"),
                 "--install-desktop-entry points the menu entry at the bundle")

    size = folder_size(bundle)
    cuda = sorted(p.name for p in bundle.rglob("*.so*") if "cudnn_" in p.name or "cusolver" in p.name)
    print(f"bundle size: {size / 2**30:.2f} GiB ({size / 1e6:.0f} MB) in {bundle}")
    print(f"GPU-only libraries present: {', '.join(cuda) or 'none'}")
    if c.failures:
        print(f"bundle_check: {len(c.failures)} check(s) failed: {'; '.join(c.failures)}", file=sys.stderr)
        return 1
    print("bundle_check: all checks passed")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", nargs="?", default=str(REPO / "dist" / "im2latex"), type=Path)
    return check(parser.parse_args().bundle)


if __name__ == "__main__":
    sys.exit(main())
