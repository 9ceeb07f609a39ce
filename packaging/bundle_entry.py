"""Entry point of the stand-alone bundle (PyInstaller): one program, two commands.

``im2latex-desktop [options]`` starts the app; ``im2latex-desktop predict|data|train|evaluate ...``
and an executable named ``im2latex`` (a second executable in the same folder, or a symlink) run
the command line, so the bundle needs one copy of Python, torch and Qt for both.
"""

from __future__ import annotations

import multiprocessing
import sys
from pathlib import Path

CLI_COMMANDS = {"predict", "data", "train", "evaluate"}


def main() -> int:
    multiprocessing.freeze_support()  # data rendering and loaders start worker processes
    name = Path(sys.argv[0]).stem.lower()
    argv = sys.argv[1:]
    if name == "im2latex" or (argv and argv[0] in CLI_COMMANDS):
        from model.cli import main as cli_main
        return cli_main(argv)
    from im2latex_desktop.__main__ import main as app_main
    return app_main(argv)


if __name__ == "__main__":
    sys.exit(main())
