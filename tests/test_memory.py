"""model.memory: which mappings may be dropped, and dropping them leaves torch working."""

from __future__ import annotations

import subprocess
import sys

import pytest

from model.memory import _cuda_mappings

SMAPS = """\
7f0000000000-7f0000100000 r--p 00000000 00:2f 11 /venv/nvidia/cu13/lib/libcublasLt.so.13
Rss:                 512 kB
Anonymous:             0 kB
VmFlags: rd mr mw me
7f0000100000-7f0000200000 r--p 00100000 00:2f 11 /venv/nvidia/cu13/lib/libcublasLt.so.13
Rss:                 256 kB
Anonymous:            64 kB
VmFlags: rd mr mw me
7f0000200000-7f0000300000 rw-p 00200000 00:2f 11 /venv/nvidia/cu13/lib/libcublasLt.so.13
Rss:                 128 kB
Anonymous:             0 kB
7f0000300000-7f0000400000 r-xp 00000000 00:2f 12 /venv/torch/lib/libtorch_cpu.so
Rss:                 900 kB
Anonymous:             0 kB
7f0000400000-7f0000500000 r-xp 00000000 00:2f 13 /venv/torch/lib/libtorch_cuda.so
Rss:                 100 kB
Anonymous:             0 kB
7f0000500000-7f0000600000 rw-p 00000000 00:00 0
Rss:                 400 kB
Anonymous:           400 kB
7f0000600000-7f0000700000 r-xp 00000000 00:2f 13 /venv/torch/lib/libtorch_cuda.so
Rss:                   0 kB
Anonymous:             0 kB
"""


def test_only_clean_read_only_cuda_mappings_are_dropped():
    # not: copy-on-write pages (relocated), writable, the CPU library, anonymous, nothing resident
    assert _cuda_mappings(SMAPS) == [(0x7f0000000000, 0x7f0000100000), (0x7f0000400000, 0x7f0000500000)]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/smaps is Linux's")
def test_dropping_cuda_pages_keeps_torch_and_the_recognizer_working(tiny_model_dir):
    code = f"""
import torch
from model.memory import drop_cuda_library_pages, trim_heap
from model.inference import Recognizer
r = Recognizer(model_path={str(tiny_model_dir.bundle)!r}, device="cpu")
r.load()  # drops the pages itself
drop_cuda_library_pages(); trim_heap()  # twice is harmless
a = torch.randn(64, 64)
assert torch.allclose(a @ torch.eye(64), a)
from PIL import Image, ImageDraw
im = Image.new("L", (120, 40), 255); ImageDraw.Draw(im).rectangle((20, 10, 30, 30), fill=0)
print("OK", r.recognize(im).latex is not None, torch.cuda.is_available() in (True, False))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "OK True True"
