"""Is every voxel the header promises really in the file?

SimpleITK's NIfTI reader fills a short ``.nii``/``.nii.gz`` with zeros without a word, and its MetaImage reader
reports a short file as "No such file or directory". These checks read the header, count the bytes that are really
there (decompressing gzip/zlib streams, which also checks their CRC) and name the shortfall. NRRD needs no check:
its reader refuses short raw and gzip data itself."""
from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path
from typing import BinaryIO, Callable, Dict, Optional, Tuple

from .errors import TruncatedError

CHUNK = 1 << 20


def check_data_size(path: Path) -> None:
    """Raise TruncatedError when a NIfTI/Analyze or MetaImage file holds less voxel data than its header says."""
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz", ".hdr", ".hdr.gz")):
        _check_nifti(path)
    elif name.endswith((".img", ".img.gz")):  # the data half of a header/image pair: check through its header
        stem = path.name[: -len(".img.gz")] if name.endswith(".gz") else path.name[: -len(".img")]
        for header in (path.with_name(stem + ".hdr"), path.with_name(stem + ".hdr.gz")):
            if header.is_file():
                _check_nifti(header)
                return
    elif name.endswith((".mha", ".mhd")):
        _check_metaimage(path)


def _short(path: Path, have: int, need: int) -> TruncatedError:
    return TruncatedError(f"{path}: holds {have} bytes of voxel data where its header needs {need}: the file is "
                          "truncated (an interrupted copy or download?); copy or export it again")


def _open(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _count(stream: BinaryIO, path: Path) -> int:
    """Bytes left in ``stream``; a gzip stream that ends early or fails its CRC is reported as damaged."""
    total = 0
    try:
        while True:
            block = stream.read(CHUNK)
            if not block:
                return total
            total += len(block)
    except (EOFError, OSError, zlib.error) as exc:
        raise TruncatedError(f"{path}: the compressed data is truncated or damaged ({exc}); copy or export the "
                             "file again") from None


def _nifti_header(head: bytes) -> Optional[Tuple[list, int, int]]:
    """(dims, bits per voxel, voxel offset) from a NIfTI-1/Analyze (348-byte) or NIfTI-2 (540-byte) header."""
    for endian in "<>":
        if len(head) >= 348 and struct.unpack(endian + "i", head[:4])[0] == 348:
            dims = list(struct.unpack(endian + "8h", head[40:56]))
            bitpix = struct.unpack(endian + "h", head[72:74])[0]
            return dims, bitpix, int(struct.unpack(endian + "f", head[108:112])[0])
        if len(head) >= 540 and struct.unpack(endian + "i", head[:4])[0] == 540:
            dims = list(struct.unpack(endian + "8q", head[16:80]))
            bitpix = struct.unpack(endian + "h", head[14:16])[0]
            return dims, bitpix, struct.unpack(endian + "q", head[168:176])[0]
    return None


def _voxel_bytes(dims: list, bits: int) -> Optional[int]:
    if not 1 <= dims[0] <= 7 or bits <= 0 or any(d <= 0 for d in dims[1:dims[0] + 1]):
        return None  # not a header we understand: SimpleITK decides
    count = 1
    for d in dims[1:dims[0] + 1]:
        count *= d
    return count * bits // 8


def _check_nifti(path: Path) -> None:
    with _open(path) as stream:
        try:
            head = stream.read(540)
        except (EOFError, OSError, zlib.error):
            return  # not gzip or not NIfTI at all: SimpleITK's own error names it
        parsed = _nifti_header(head)
        if parsed is None:
            return
        dims, bits, offset = parsed
        need = _voxel_bytes(dims, bits)
        if need is None:
            return
        pair = path.name.lower().endswith((".hdr", ".hdr.gz"))
        if not pair:
            have = len(head) + _count(stream, path) - max(offset, 0)
            if have < need:
                raise _short(path, max(have, 0), need)
            return
    # Analyze / NIfTI pair: the voxels are in the .img (or .img.gz) beside the header.
    stem = path.name[: -len(".hdr.gz")] if path.name.lower().endswith(".gz") else path.name[: -len(".hdr")]
    for data in (path.with_name(stem + ".img"), path.with_name(stem + ".img.gz")):
        if data.is_file():
            with _open(data) as stream:
                have = _count(stream, data) - max(offset, 0)
            if have < need:
                raise _short(data, max(have, 0), need)
            return


_META_TYPE_BYTES: Dict[str, int] = {
    "MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4, "MET_LONG": 4,
    "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4, "MET_DOUBLE": 8}


def _metaimage_header(stream: BinaryIO) -> Dict[str, str]:
    """``Key = Value`` lines up to and including ElementDataFile (always the last header line)."""
    fields: Dict[str, str] = {}
    for _ in range(200):
        line = stream.readline(4096)
        if not line:
            break
        key, sep, value = line.decode("latin-1").partition("=")
        if sep:
            fields[key.strip()] = value.strip()
        if key.strip() == "ElementDataFile":
            break
    return fields


def _check_metaimage(path: Path) -> None:
    with open(path, "rb") as stream:
        fields = _metaimage_header(stream)
        data_file = fields.get("ElementDataFile", "")
        try:
            dims = [int(v) for v in fields["DimSize"].split()]
            need = _META_TYPE_BYTES[fields["ElementType"]] * int(fields.get("ElementNumberOfChannels", "1"))
        except (KeyError, ValueError):
            return  # SimpleITK decides
        for d in dims:
            need *= d
        if int(fields.get("HeaderSize", "0") or 0) != 0 or data_file in ("", "LIST") or "%" in data_file:
            return  # layouts SimpleITK checks itself or that this check does not model
        compressed = fields.get("CompressedData", "False").lower() == "true"
        if data_file == "LOCAL":
            _check_meta_data(stream, path, need, compressed)
            return
    data = path.parent / data_file
    if data.is_file():
        with open(data, "rb") as stream:
            _check_meta_data(stream, data, need, compressed)


def _check_meta_data(stream: BinaryIO, path: Path, need: int, compressed: bool) -> None:
    if not compressed:
        have = _count(stream, path)
    else:
        have = _inflated_size(stream.read, path)
    if have < need:
        raise _short(path, have, need)


def _inflated_size(read: Callable[[int], bytes], path: Path) -> int:
    """Bytes of a zlib stream once inflated; a stream that stops before its end marker is truncated."""
    inflater = zlib.decompressobj()
    total = 0
    try:
        while not inflater.eof:
            block = read(CHUNK)
            if not block:
                raise TruncatedError(f"{path}: the compressed data stops before its end (truncated); copy or "
                                     "export the file again")
            total += len(inflater.decompress(block, CHUNK))  # bounded output: a zip bomb stays small in memory
            while inflater.unconsumed_tail and not inflater.eof:
                total += len(inflater.decompress(inflater.unconsumed_tail, CHUNK))
    except zlib.error as exc:
        raise TruncatedError(f"{path}: the compressed data is damaged ({exc}); copy or export the file again") \
            from None
    return total
