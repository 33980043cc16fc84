"""Writing a voxel array with its voxel-to-patient matrix as NRRD, from plain numpy data, so that it can run in a
background thread (numpy, zlib and file writing release the GIL; VTK and MRML calls in Slicer's Python do not).

The header is the one Slicer's own NRRD writer produces for a volume node: LPS space, space directions and
origin from the node's IJK-to-RAS matrix, axes in the order i, j, k (the (k, j, i) array's last index fastest)."""
import zlib
from pathlib import Path

import numpy as np

NRRD_TYPES = {"int8": "signed char", "uint8": "uchar", "int16": "short", "uint16": "ushort", "int32": "int",
              "uint32": "uint", "int64": "longlong", "uint64": "ulonglong", "float32": "float",
              "float64": "double"}
CHUNK_BYTES = 1 << 24  # compress in pieces, so that a cancel check or another thread gets a turn in between
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def nrrdHeader(voxels: np.ndarray, ijkToRas: np.ndarray, compressed: bool) -> str:
    if voxels.ndim != 3:
        raise ValueError(f"a 3D scalar volume is needed, not an array of shape {voxels.shape}")
    dtype = np.dtype(voxels.dtype).newbyteorder("=")
    if dtype.name not in NRRD_TYPES:
        raise ValueError(f"voxel type {dtype.name} cannot be written as NRRD")
    matrix = np.asarray(ijkToRas, dtype=float)
    directions = RAS_TO_LPS @ matrix[:3, :3]  # columns: the i, j, k steps in LPS
    origin = RAS_TO_LPS @ matrix[:3, 3]

    def vector(values) -> str:
        return "(" + ",".join(repr(float(v)) for v in values) + ")"

    sizes = " ".join(str(n) for n in voxels.shape[::-1])
    return ("NRRD0004\n"
            f"type: {NRRD_TYPES[dtype.name]}\n"
            "dimension: 3\n"
            "space: left-posterior-superior\n"
            f"sizes: {sizes}\n"
            f"space directions: {' '.join(vector(directions[:, axis]) for axis in range(3))}\n"
            "kinds: domain domain domain\n"
            "endian: little\n"
            f"encoding: {'gzip' if compressed else 'raw'}\n"
            f"space origin: {vector(origin)}\n\n")


def writeNrrd(path: Path, voxels: np.ndarray, ijkToRas: np.ndarray, compressed: bool = False,
              checkCancel=lambda: None) -> Path:
    """Write ``voxels`` ((k, j, i), as ``slicer.util.arrayFromVolume`` gives) to ``path`` through a temporary
    file (a stopped write leaves nothing half-written under the final name)."""
    path = Path(path)
    data = np.ascontiguousarray(voxels, dtype=np.dtype(voxels.dtype).newbyteorder("<")).reshape(-1).view(np.uint8)
    header = nrrdHeader(voxels, ijkToRas, compressed).encode("ascii")
    partial = path.with_name(path.name + ".partial")
    try:
        with open(partial, "wb") as out:
            out.write(header)
            compressor = zlib.compressobj(6, zlib.DEFLATED, 31) if compressed else None  # 31: a gzip stream
            for start in range(0, data.size, CHUNK_BYTES):
                checkCancel()
                chunk = data[start:start + CHUNK_BYTES].tobytes()
                out.write(compressor.compress(chunk) if compressor else chunk)
            if compressor:
                out.write(compressor.flush())
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path
