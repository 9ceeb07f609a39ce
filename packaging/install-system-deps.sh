#!/usr/bin/env bash
# Debian/Ubuntu packages the project uses: TeX Live + poppler to render training data (see
# install-tex.sh), and an X server (Xvfb, Xorg dummy driver) with Qt's xcb libraries for the
# real-screen tests.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bash "$here/install-tex.sh"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
  xvfb xauth xdotool x11-xserver-utils xserver-xorg-core xserver-xorg-video-dummy xclip \
  libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 \
  libxcb-render-util0 libxcb-image0 libxcb-xinerama0 libxcb-randr0 libegl1 libgl1 libdbus-1-3 \
  libfontconfig1 libglib2.0-0
# KaTeX in headless Chromium for the web styles of the evaluation suite (model/data/web:
# npm's katex and playwright-core drive Debian's chromium; no browser is downloaded).
# Node.js 18 or newer; an existing node/npm (e.g. from NodeSource) is kept.
web_pkgs="chromium"
command -v node >/dev/null 2>&1 || web_pkgs="$web_pkgs nodejs"
command -v npm >/dev/null 2>&1 || web_pkgs="$web_pkgs npm"
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $web_pkgs
