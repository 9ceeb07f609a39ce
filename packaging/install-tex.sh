#!/usr/bin/env bash
# The Debian/Ubuntu packages that `im2latex data render --renderer tex` needs: pdflatex with
# amsmath/amssymb/bm/mathrsfs, the preview package, the font setups (lmodern, mathptmx,
# mathpazo, sfmath) and pdftoppm.  lmodern is named because it is only a "Recommends" of
# texlive-base.  Machines without TeX can render with --renderer mathtext instead.
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
  texlive-latex-base texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended \
  lmodern poppler-utils
