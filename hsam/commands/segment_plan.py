"""What ``hsam segment`` will read and write, checked before any model loads: every output has a supported type
and a writable folder, no output is (whatever its spelling: relative, ``./``, symlink, hard link) an input or a
file of a folder given as input, and no two outputs share a name. Under torchrun, ``shard_jobs`` says which
process segments which volume."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..infer.output import check_image_output, check_writable, output_kind, written_files

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")


@dataclass
class Job:
    input: Path
    output: Path
    uncertainty: Optional[Path] = None


@dataclass
class Plan:
    jobs: List[Job]
    batch: bool  # a folder or a list of inputs (not one file or DICOM folder)
    protected: List[Path]  # files no output may replace: the inputs with their data files, scanned folders' files


def is_volume_file(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(VOLUME_SUFFIXES) and \
        not path.name.lower().endswith(".seg.nrrd")


def stem(path: Path) -> str:
    name = path.name
    for suffix in (".seg.nrrd",) + VOLUME_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def plan_jobs(inputs: str, output: str, fmt: str, uncertainty: Optional[str] = None) -> Plan:
    """One file or DICOM folder, a folder of volume files, or a .txt list of paths; checked (see ``check_plan``)."""
    src, dst = Path(inputs), Path(output)
    if not src.exists():
        raise ValueError(f"{src}: no such file or folder")
    if not fmt.startswith("."):
        raise ValueError(f"--format {fmt}: give an output suffix with its dot, e.g. --format .nii.gz")
    output_kind("x" + fmt)
    protected = [src] if src.is_file() else []
    if src.is_file() and src.suffix.lower() == ".txt":
        sources = [Path(line.strip()) for line in src.read_text().splitlines() if line.strip()]
    elif src.is_dir() and any(is_volume_file(p) for p in src.iterdir()):
        sources = sorted(p for p in src.iterdir() if is_volume_file(p))
        protected += [p for p in src.iterdir() if p.is_file()]  # also files the scan skips, e.g. a .seg.nrrd
    else:
        if src.is_dir():  # a DICOM series folder
            protected += [p for p in src.iterdir() if p.is_file()]
        target = dst / (stem(src) + fmt) if dst.is_dir() else dst
        plan = Plan([Job(src, target, Path(uncertainty) if uncertainty else None)], False, protected)
        check_plan(plan)
        return plan
    if dst.suffix and not dst.is_dir():
        raise ValueError(f"{output}: several inputs need an output folder, not a file name")
    jobs = []
    for source in sources:
        target = dst / (stem(source) + fmt)
        jobs.append(Job(source, target, target.with_name(stem(target) + "_uncertainty.nii.gz") if uncertainty
                        else None))
    plan = Plan(jobs, True, protected + [p for s in sources for p in data_files(s)])
    check_plan(plan)
    return plan


def data_files(path: Path) -> List[Path]:
    """The input file and any file its header names for the voxels (.mhd, .nhdr, .hdr/.img pairs)."""
    files = [path]
    name = path.name.lower()
    try:
        if name.endswith(".mhd") or name.endswith(".nhdr"):
            key = "ElementDataFile" if name.endswith(".mhd") else "data file"
            sep = "=" if name.endswith(".mhd") else ":"
            with open(path, "rb") as f:
                for raw in f.read(65536).decode("latin-1").splitlines():
                    k, found, value = raw.partition(sep)
                    if found and k.strip() == key and value.strip() not in ("LOCAL", "LIST"):
                        files.append(path.parent / value.strip())
        elif name.endswith(".hdr"):
            files += [path.with_name(path.name[:-4] + ext) for ext in (".img", ".img.gz")]
    except OSError:
        pass  # an unreadable input fails with its own message when it is read
    return files


def _identity(path: Path) -> Optional[Tuple[int, int]]:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _spelling(path: Path) -> str:
    return os.path.normcase(os.path.realpath(path))


def check_plan(plan: Plan) -> None:
    """Raise ValueError, naming the files and what to do, before any work starts."""
    protected: Dict[object, Path] = {}
    for path in plan.protected:
        identity = _identity(path)
        if identity is not None:
            protected[identity] = path
        protected.setdefault(_spelling(path), path)
    owners: Dict[str, str] = {}
    probed: set = set()
    for job in plan.jobs:
        output_kind(job.output)
        outputs = [(out, f"the result of {job.input}") for out in written_files(job.output)]
        if job.uncertainty is not None:
            check_image_output(job.uncertainty)
            outputs += [(out, f"the uncertainty map of {job.input}") for out in written_files(job.uncertainty)]
        for out, role in outputs:
            check_writable(out, probed)
            hit = protected.get(_identity(out)) or protected.get(_spelling(out))
            if hit is not None:
                where = "is the input" if hit == job.input else "would replace the input file"
                raise ValueError(f"the output {out} {where} {hit}; results never overwrite inputs: choose another "
                                 f"output {'folder' if plan.batch else 'name'} with -o")
            previous = owners.setdefault(_spelling(out), role)
            if previous != role:
                raise ValueError(f"{out} would be written twice, as {previous} and as {role}; rename one input or "
                                 "output, or segment them separately")


def shard_jobs(jobs: List[Job], rank: int, processes: int) -> List[Tuple[int, Job]]:
    """(index in ``jobs``, job) for the process ``rank`` of ``processes``: every job goes to exactly one process.
    Largest input first to the process with the fewest bytes so far, so a few large volumes do not all land on
    one GPU; every process computes the same split from the same list, without talking to the others."""
    sizes = [max(1, _input_bytes(job.input)) for job in jobs]
    load = [0] * processes
    share: List[Tuple[int, Job]] = []
    for index in sorted(range(len(jobs)), key=lambda i: (-sizes[i], i)):
        lightest = min(range(processes), key=lambda r: (load[r], r))
        load[lightest] += sizes[index]
        if lightest == rank:
            share.append((index, jobs[index]))
    return sorted(share, key=lambda pair: pair[0])


def _input_bytes(path: Path) -> int:
    """Bytes on disk of an input: the file with its data files, or a DICOM folder's files."""
    files = [p for p in path.iterdir() if p.is_file()] if path.is_dir() else data_files(path)
    total = 0
    for file in files:
        try:
            total += file.stat().st_size
        except OSError:
            pass  # a missing input fails with its own message when it is read
    return total
