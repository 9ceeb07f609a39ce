"""What a benchmark figure ran on: CPU model, cores, load, torch build, threads, OpenMP wait policy.

Every figure in ``benchmarks/results.json`` carries one of these, because the numbers only mean
something next to the machine and the load it was measured under (the development machine is
shared and busy).  ``torch`` is imported only when asked for, so the app probe can describe its
machine before torch loads.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def physical_cores() -> int:
    """Physical cores (hyper-threads counted once); the logical count where that is unknown."""
    from model.inference import physical_cores as count

    return count()


def native_bf16() -> bool:
    """True when the CPU has bf16 arithmetic (AVX512-BF16 or AMX); otherwise bf16 is emulated and slow."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def machine_info(with_torch: bool = True) -> dict:
    """A description of this machine now; ``with_torch`` adds torch's version, threads and GPU."""
    info = {
        "cpu": cpu_model(),
        "physical_cores": physical_cores(),
        "logical_cpus": os.cpu_count(),
        "load_average": load_average(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
    }
    if with_torch:
        import torch

        info.update(
            torch=torch.__version__,
            torch_threads=torch.get_num_threads(),
            cpu_capability=torch.backends.cpu.get_cpu_capability(),
            native_bf16=native_bf16(),
            gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        )
    return info


def short_machine(info: dict) -> str:
    """One line for a table caption: ``AMD EPYC, 2 cores, load 3.1, torch 2.14.1, OMP PASSIVE``."""
    load = info.get("load_average") or ["?"]
    parts = [info.get("cpu", "?"), f"{info.get('physical_cores', '?')} cores", f"load {load[0]}"]
    if "torch" in info:
        parts.append(f"torch {info['torch']}")
    parts.append(f"OMP_WAIT_POLICY {info.get('omp_wait_policy', '?')}")
    if info.get("gpu"):
        parts.append(f"GPU {info['gpu']}")
    return ", ".join(str(p) for p in parts)
