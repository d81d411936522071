"""Compiling a full-integer file for an Arm Ethos-U NPU with Vela, and what the compiler reports.

``kseg export ... --quantize int8-npu --npu ethos-u65-256`` runs Arm's Vela compiler (PyPI
``ethos-u-vela``; ``pip install 'kseg[npu]'``) on the ``int8-npu`` file with the given
``--accelerator-config`` (ethos-u55-32 ... ethos-u55-256, ethos-u65-256, ethos-u65-512,
ethos-u85-*), Vela's default system configuration and memory mode for that accelerator. The
compiled file (the NPU part as one ``ethos-u`` custom operator, plus any operators left to the
CPU) is kept beside the source as ``vela_<mode>_<accelerator>.tflite``: it runs only where the
Ethos-U delegate/driver is, so nothing else in kseg loads it. The record (metadata.json ``npu``)
holds the CPU/NPU operator split, the operators left to the CPU, SRAM and DRAM use and Vela's
estimated inferences per second — an estimate of the NPU alone from its performance model, not a
measurement.
"""

import csv
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from kseg.errors import KsegError

INSTALL = "pip install 'kseg[npu]'  (or: pip install ethos-u-vela)"


class NpuError(KsegError, RuntimeError):
    """Vela missing, or a compilation that failed."""


def vela_available():
    return importlib.util.find_spec("ethosu.vela") is not None


def require_vela():
    """Raise ``NpuError`` with what to install when Vela is not importable."""
    if not vela_available():
        raise NpuError(f"--npu compiles with Arm's Vela, which is not installed here: {INSTALL}")


REPORT_SUFFIXES = ("_summary.csv", "_report.txt")  # Vela's summary and console output, kept


def compiled_name(mode, accelerator):
    return f"vela_{mode}_{accelerator}.tflite"


def _count(pattern, text):
    m = re.search(pattern, text)
    return int(m.group(1)) if m else None


def compile_file(path, accelerator, out_dir=None, timeout=1800):
    """Compile the .tflite at ``path`` for ``accelerator`` (a Vela ``--accelerator-config``).
    Writes the compiled file into ``out_dir`` (default: beside ``path``) and returns the record
    {"accelerator", "system_config", "memory_mode", "compiled_file", "cpu_operators",
    "npu_operators", "cpu_operator_list", "sram_used_kib", "dram_used_kib", "report_files",
    "estimated_inferences_per_second", "estimated_ms", "vela_version"}."""
    require_vela()
    path = Path(path)
    out_dir = Path(out_dir or path.parent)
    with tempfile.TemporaryDirectory(prefix="kseg-vela-") as tmp:
        tmp = Path(tmp)
        source = tmp / path.name  # Vela names its outputs after the input's stem
        shutil.copyfile(path, source)
        cmd = [sys.executable, "-m", "ethosu.vela", str(source), "--accelerator-config",
               str(accelerator), "--output-dir", str(tmp / "out"), "--show-cpu-operations"]
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise NpuError(f"Vela did not finish compiling {path.name} in {timeout} s") from None
        if run.returncode != 0:
            tail = (run.stderr.strip() or run.stdout.strip()).splitlines()[-5:]
            raise NpuError(f"Vela failed on {path.name} for {accelerator}:\n  " + "\n  ".join(tail))
        summaries = sorted((tmp / "out").glob(f"{source.stem}_summary_*.csv"))
        compiled = tmp / "out" / f"{source.stem}_vela.tflite"
        if not summaries or not compiled.is_file():
            raise NpuError(f"Vela wrote no compiled file or summary for {path.name}")
        with open(summaries[0], newline="") as f:
            row = next(csv.DictReader(f))
        target = out_dir / compiled_name(path.stem.removeprefix("model_"), accelerator)
        shutil.copyfile(compiled, target)
        # Vela's own report beside the compiled file: its summary table and its console output
        # (operator split, the operators left to the CPU and why, per-pass performance)
        summary, report = (out_dir / f"{target.stem}{suffix}" for suffix in REPORT_SUFFIXES)
        shutil.copyfile(summaries[0], summary)
        report.write_text(run.stdout)
    text = run.stdout
    # "Warning (supported operators) operator: RESIZE_BILINEAR, ofm: ..." per refused operator
    cpu_ops = sorted({m.group(1) for m in re.finditer(r"operator: (\w+),", text)})
    return {
        "accelerator": str(accelerator),
        "system_config": row.get("system_config"),
        "memory_mode": row.get("memory_mode"),
        "compiled_file": target.name,
        "report_files": [summary.name, report.name],
        "cpu_operators": _count(r"CPU operators = (\d+)", text),
        "npu_operators": _count(r"NPU operators = (\d+)", text),
        "cpu_operator_list": cpu_ops,
        "sram_used_kib": round(float(row["sram_memory_used"]), 2),
        "dram_used_kib": round(float(row["dram_memory_used"]), 2),
        "estimated_inferences_per_second": round(float(row["inferences_per_second"]), 2),
        "estimated_ms": round(1000.0 * float(row["inference_time"]), 3),
        "vela_version": _vela_version(),
    }


def _vela_version():
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ethos-u-vela")
    except PackageNotFoundError:
        return None


def format_record(name, record):
    """One line per compiled file, for the export summary and ``kseg benchmark``."""
    return (f"{name} on {record['accelerator']} (Vela {record.get('vela_version') or '?'}, "
            f"{record['system_config']}, {record['memory_mode']}): "
            f"{record['npu_operators']} NPU / {record['cpu_operators']} CPU operators"
            + (f" ({', '.join(record['cpu_operator_list'])})" if record["cpu_operator_list"] else "")
            + f", SRAM {record['sram_used_kib']:.0f} KiB, DRAM {record['dram_used_kib']:.0f} KiB, "
            f"estimated {record['estimated_inferences_per_second']:.1f} inferences/s "
            f"({record['estimated_ms']:.2f} ms, the NPU alone)")
