"""Give back memory the loaded recognizer does not use (Linux; elsewhere a no-op).

Two things inflate the app's resident memory after the model has loaded, neither of them used
again when the model runs on the CPU:

* PyPI's Linux torch is a CUDA build: ``import torch`` loads cuBLAS(Lt), NVRTC, nvJitLink & co.
  even on a machine without a GPU, and the dynamic loader reads some 140 MB of their pages
  (symbol and relocation tables) while doing so.  Those pages stay mapped, and so counted in
  the process's RSS, though a CPU run never touches them again.  ``drop_cuda_library_pages``
  unmaps them (``madvise(MADV_DONTNEED)``), but only in mappings that are read-only and hold
  no private (copy-on-write) page, where that is exactly undoable: a page touched again is
  read back from the file, with the same bytes.
* the C allocator keeps freed heap memory (loading and warming up the model frees tens of MB);
  ``malloc_trim`` returns it to the system.

``release_unused_memory`` does both; ``Recognizer.load`` calls it once the model is ready.
Measured in ``benchmarks/RESULTS.md`` ("app idle RSS").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import sys

MADV_DONTNEED = 4
# Libraries of torch's CUDA build that a CPU run never calls into.
CUDA_LIBRARY_MARKS = ("/nvidia/", "/libtorch_cuda", "/libc10_cuda", "/libcudnn", "/libnccl", "/libcusparseLt")


def _libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def _cuda_mappings(smaps: str) -> list[tuple[int, int]]:
    """(start, end) of each mapping of a CUDA library that is read-only and holds no private page."""
    found: list[tuple[int, int]] = []
    current: dict | None = None

    def close(vma: dict | None) -> None:
        if vma and vma["keep"] and vma.get("Anonymous", 1) == 0 and vma.get("Rss", 0) > 0:
            found.append((vma["start"], vma["end"]))

    for line in smaps.splitlines():
        fields = line.split()
        if not fields:
            continue
        if not fields[0].endswith(":"):  # a mapping's header: range perms offset dev inode [path]
            close(current)
            start, _, end = fields[0].partition("-")
            path = fields[5] if len(fields) > 5 else ""
            perms = fields[1] if len(fields) > 1 else ""
            keep = "w" not in perms and path.startswith("/") and any(m in path for m in CUDA_LIBRARY_MARKS)
            current = {"start": int(start, 16), "end": int(end, 16), "keep": keep}
        elif current is not None and len(fields) >= 2 and fields[1].isdigit():
            current[fields[0][:-1]] = int(fields[1])
    close(current)
    return found


def drop_cuda_library_pages() -> int:
    """Unmap the clean, read-only pages of torch's CUDA libraries; returns the bytes of the
    mappings advised (0 where there is nothing to do or no way to do it)."""
    if not sys.platform.startswith("linux"):
        return 0
    libc = _libc()
    try:
        with open("/proc/self/smaps", encoding="ascii", errors="replace") as f:
            ranges = _cuda_mappings(f.read())
    except OSError:
        return 0
    if libc is None or not ranges:
        return 0
    madvise = libc.madvise
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    page = mmap.PAGESIZE
    done = 0
    for start, end in ranges:
        start -= start % page
        if madvise(start, end - start, MADV_DONTNEED) == 0:
            done += end - start
    return done


def trim_heap() -> bool:
    """Return the C heap's free memory to the system (glibc's ``malloc_trim``)."""
    libc = _libc() if sys.platform.startswith("linux") else None
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return False
    trim.argtypes = [ctypes.c_size_t]
    return bool(trim(0))


def release_unused_memory(device: str) -> None:
    """After loading a model for ``device``: trim the heap, and on the CPU drop the CUDA libraries' pages."""
    trim_heap()
    if device == "cpu":
        drop_cuda_library_pages()
