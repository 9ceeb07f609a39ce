"""``im2latex-desktop [--snip] [--model PATH] [--device D] [--install-desktop-entry]`` and
``python -m im2latex_desktop``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from im2latex_desktop import __version__


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="im2latex-desktop",
        description="Snip a formula on the screen and get its LaTeX, recognized on this computer.",
    )
    parser.add_argument("--snip", action="store_true",
                        help="start snipping at once; if the app is already running, make it snip")
    parser.add_argument("--model", metavar="PATH", default="",
                        help="model folder or checkpoint (default: settings, $IM2LATEX_MODEL, or the bundled model)")
    parser.add_argument("--device", metavar="D", default="",
                        help="auto, cpu, cuda, cuda:N or mps (default: from the settings)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    entry = parser.add_mutually_exclusive_group()
    entry.add_argument("--install-desktop-entry", action="store_true",
                       help="add the menu entries (app and 'Snip a Formula') and icons for this user "
                            "under $XDG_DATA_HOME (default ~/.local/share), then exit")
    entry.add_argument("--remove-desktop-entry", action="store_true",
                       help="remove what --install-desktop-entry added, then exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.install_desktop_entry or args.remove_desktop_entry:  # no Qt: works without a display
        from im2latex_desktop import desktop_entry
        return desktop_entry.run_install() if args.install_desktop_entry else desktop_entry.run_remove()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from im2latex_desktop.app import DesktopApp
    from im2latex_desktop.single_instance import send_command

    qapp = QApplication.instance() or QApplication(sys.argv[:1])
    qapp.setApplicationName("im2latex-desktop")
    qapp.setApplicationDisplayName("im2latex")
    qapp.setDesktopFileName("im2latex-desktop")

    command = "snip" if args.snip else "show"
    if send_command(command):
        print(f"im2latex-desktop is already running; it was asked to {command}.")
        return 0

    desktop = DesktopApp(qapp, model=args.model, device=args.device)
    desktop.listen()
    desktop.start(snip=args.snip)

    # Let Python see Ctrl+C / SIGTERM while Qt's loop runs, and quit cleanly on them.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: qapp.quit())
    ticker = QTimer()
    ticker.timeout.connect(lambda: None)
    ticker.start(300)
    code = qapp.exec()
    desktop.shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
