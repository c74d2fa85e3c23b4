"""DICOM reading: header scan, series grouping, geometry, pixel decoding.

Geometry follows the DICOM Image Plane module (PS3.3 C.7.6.2): for each frame,
ImageOrientationPatient gives the LPS directions of a row (column index i
increasing) and of a column (row index j increasing), ImagePositionPatient the
LPS centre of pixel (0, 0), PixelSpacing the (row, column) spacing. Our array is
(i, j, k[, volume]): i = column index, j = row index, k = slice ordered along
the slice normal row x column; the affine maps (i, j, k) to RAS+ millimetres
(x and y of LPS negated), as dcm2niix and nibabel do after reorientation.
The slice axis' step is the measured distance between slice positions
(slice gaps included), not SliceThickness.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
import warnings
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DicomError, GeometryError, InputError, SeriesSelectionError
from ..scan import Scan

__all__ = ["Frame", "SeriesInfo", "scan_folder", "read_series", "series_summary", "select_series"]

_SKIP_NAMES = {".DS_Store", "DICOMDIR", "VERSION", "Thumbs.db"}
_SKIP_SUFFIXES = {".json", ".nii", ".gz_", ".txt", ".md", ".csv", ".png", ".jpg", ".xml", ".pdf", ".py", ".sh"}


@dataclass
class Frame:
    """One 2-D image (a classic file or one frame of an enhanced file)."""

    path: Path
    index: int | None  # frame number in a multi-frame file
    ipp: np.ndarray | None
    iop: np.ndarray | None
    spacing: tuple[float, float] | None  # (row spacing, column spacing)
    thickness: float | None
    te: float | None
    echo_number: int | None
    component: str  # "M" magnitude, "P" phase, "R"/"I" real/imag, "" unknown
    instance: int
    temporal: int | None
    slope: float
    intercept: float
    rows: int
    cols: int
    tile: tuple | None = None  # Siemens mosaic: (tiles per side, tile index)


@dataclass
class SeriesInfo:
    """A series found in a folder (no PHI)."""

    key: str
    uid: str
    number: int | None
    description: str
    frames: list[Frame] = field(default_factory=list)
    header: object = None  # a representative dataset (pixels not loaded)
    gz: bool = False
    #: path -> where the uncompressed pixel values lie in the file (see :func:`_native_layout`), or None
    layouts: dict = field(default_factory=dict, repr=False)
    #: copies of instances of this series left out by :func:`scan_folder`: (kept path, dropped path,
    #: SOPInstanceUID, dropped file's layout, same rescale); their pixels are compared by :func:`read_series`
    duplicates: list = field(default_factory=list, repr=False)

    @property
    def echo_times(self) -> list[float]:
        return sorted({round(f.te, 3) for f in self.frames if f.te is not None})

    @property
    def n_images(self) -> int:
        return len(self.frames)

    def label(self) -> str:
        num = "?" if self.number is None else str(self.number)
        comp = {"P": " (phase)", "R": " (real)", "I": " (imaginary)"}.get(self.key.rsplit("|", 1)[-1], "")
        return f"#{num} '{self.description}'{comp}, {self.n_images} images"


#: pydicom warnings about a real file's encoding that pydicom itself resolves (it reads the file
#: correctly): not shown. Other pydicom warnings reach the caller (the CLI prints each once, on one line).
_HARMLESS_PYDICOM = r"Expected (explicit|implicit) VR, but found (explicit|implicit) VR"

#: first tag groups of a DICOM data set written without the 128-byte preamble and "DICM"
#: (file meta 0002, identifying 0008), little or big endian
_NO_PREAMBLE_GROUPS = (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08")


def _looks_like_dicom(path: Path) -> bool:
    """True when ``path`` starts like a DICOM file: the 128-byte preamble followed by "DICM" (PS3.10
    7.1), or (files written without preamble) a group 0002/0008 tag followed by a two-letter VR or
    a length. Checked before pydicom parses a file, so that NIfTI, NumPy, HTML... files are never
    read as DICOM (pydicom's ``force=True`` parses anything, with misleading warnings)."""
    try:
        if path.name.lower().endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                head = fh.read(132)
        else:
            with open(path, "rb") as fh:
                head = fh.read(132)
    except (OSError, EOFError, ValueError):  # unreadable or not gzip: not DICOM either
        return False
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    return len(head) >= 8 and head[:2] in _NO_PREAMBLE_GROUPS and (head[4:6].isalpha() and head[4:6].isupper()
                                                                 or head[6:8] == b"\x00\x00" or head[4:6] == b"\x00\x00")


@contextlib.contextmanager
def _quiet_pydicom():
    """Hide :data:`_HARMLESS_PYDICOM` warnings. Entered once around a whole header scan or decode, in
    the calling thread (``warnings.catch_warnings`` is process-wide: the worker threads run inside it)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_HARMLESS_PYDICOM)
        yield


def _read(path: Path, *, stop_before_pixels: bool):
    import pydicom

    if path.name.endswith(".gz"):
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
        return pydicom.dcmread(io.BytesIO(raw), stop_before_pixels=stop_before_pixels, force=True)
    return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, force=True)


_NATIVE_LE = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}  # implicit / explicit VR little endian
_PIXEL_TAG = b"\xe0\x7f\x10\x00"  # (7FE0,0010) little endian


def _read_head(path: Path):
    """Header of a file (pixels not read) and, for uncompressed little-endian pixel data, its layout.

    pydicom stops in front of the Pixel Data element; the file position there tells where the
    pixel values start, so that decoding reads them directly (no second header parse).
    """
    import pydicom

    if path.name.endswith(".gz"):
        return _read(path, stop_before_pixels=True), None
    with open(path, "rb") as fh:
        ds = pydicom.dcmread(fh, stop_before_pixels=True, force=True)
        pos = fh.tell()
        head = fh.read(12)
    try:
        layout = _native_layout(ds, pos, head)
    except Exception:  # noqa: BLE001 -- odd header: pydicom decodes this file
        layout = None
    return ds, layout


def _native_layout(ds, pos: int, head: bytes):
    """(offset, dtype, count, shape, bits_stored) of native pixel data, or None (pydicom decodes it).

    Only the cases where the stored bytes are the pixel values: implicit/explicit VR little
    endian, one sample per pixel, 8/16/32 bits allocated, defined length equal to
    Rows x Columns x frames (+1 pad byte when odd). Values are then masked to BitsStored
    (unsigned) or sign-extended (signed), exactly as pydicom's ``pixel_array`` does.
    """
    meta = getattr(ds, "file_meta", None)
    ts = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if ts not in _NATIVE_LE or len(head) < 8 or head[:4] != _PIXEL_TAG:
        return None
    if ts == "1.2.840.10008.1.2.1":
        if head[4:6] not in (b"OW", b"OB") or len(head) < 12:
            return None
        length, offset = int.from_bytes(head[8:12], "little"), pos + 12
    else:
        length, offset = int.from_bytes(head[4:8], "little"), pos + 8
    ba = int(ds.get("BitsAllocated", 0) or 0)
    bs = int(ds.get("BitsStored", ba) or ba)
    rep = int(ds.get("PixelRepresentation", 0) or 0)
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    rows, cols = int(ds.Rows), int(ds.Columns)
    nfr = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if ba not in (8, 16, 32) or spp != 1 or rep not in (0, 1) or not 0 < bs <= ba or rows < 1 or cols < 1 or nfr < 1:
        return None
    count = rows * cols * nfr
    nbytes = count * ba // 8
    if length == 0xFFFFFFFF or length not in (nbytes, nbytes + (nbytes % 2)):
        return None
    dtype = f"<{'i' if rep else 'u'}{ba // 8}"
    shape = (nfr, rows, cols) if nfr > 1 else (rows, cols)
    return offset, dtype, count, shape, bs


def _read_native(path: Path, layout) -> np.ndarray:
    offset, dtype, count, shape, bs = layout
    arr = np.fromfile(path, dtype=dtype, count=count, offset=offset)
    if arr.size != count:
        raise ValueError(f"pixel data truncated ({arr.size} of {count} values)")
    ba = arr.dtype.itemsize * 8
    if bs < ba:
        if arr.dtype.kind == "u":
            arr &= np.array((1 << bs) - 1, dtype=arr.dtype)
        else:
            shift = np.array(ba - bs, dtype=arr.dtype)
            arr = (arr << shift) >> shift
    return arr.reshape(shape).astype(arr.dtype.newbyteorder("="), copy=False)


#: SOP Class UID of DICOM Segmentation Storage (SEG; written and read by :mod:`.dicom_seg`)
SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"


def _is_seg(ds) -> bool:
    return str(ds.get("SOPClassUID", "")) == SEG_SOP_CLASS or str(ds.get("Modality", "")).upper() == "SEG"


def _is_image(ds) -> bool:
    """An image to load: has rows and columns, and is not a DICOM Segmentation (SEG frames are
    segment masks of another series, e.g. a labels.seg.dcm saved into the study folder)."""
    if _is_seg(ds):
        return False
    return "Rows" in ds and "Columns" in ds and ("SOPClassUID" in ds or "SeriesInstanceUID" in ds or "PixelData" in ds)


def _f(v, default=None):
    try:
        return float(v)
    except (TypeError, ValueError):
        return default


def _component(image_type, frame_type=None, complex_comp=None) -> str:
    if complex_comp:
        c = str(complex_comp).upper()
        return {"MAGNITUDE": "M", "PHASE": "P", "REAL": "R", "IMAGINARY": "I"}.get(c, "")
    vals = [str(v).upper() for v in (frame_type or image_type or [])]
    if any(v in ("P", "PHASE") or v.startswith("PHASE") for v in vals[2:]):
        return "P"
    if any(v in ("R", "REAL") for v in vals[2:]):
        return "R"
    if any(v in ("I", "IMAGINARY") for v in vals[2:]):
        return "I"
    return "M"


def _philips_fp(items, slope: float, intercept: float) -> tuple[float, float]:
    """Philips floating-point values: FP = (SV * RS + RI) / (RS * SS) when the private scale slope SS exists.

    Chenevert TL, et al. "Errors in quantitative image analysis due to platform-dependent image
    scaling." Transl Oncol 2014;7:65-71. doi:10.1593/tlo.13811 -- the same values dcm2niix writes.
    """
    try:
        item = items[0] if items else None
        ss = _f(item.get((0x2005, 0x100E)).value) if item is not None and (0x2005, 0x100E) in item else None
    except (AttributeError, IndexError, TypeError):
        ss = None
    if not ss or not slope:
        return slope, intercept
    return 1.0 / ss, intercept / (slope * ss)


def _first(seq_owner, name):
    seq = getattr(seq_owner, name, None)
    return seq[0] if seq else None


def _frames_of(ds, path: Path) -> list[Frame]:
    rows, cols = int(ds.Rows), int(ds.Columns)
    if "PerFrameFunctionalGroupsSequence" in ds:
        shared = _first(ds, "SharedFunctionalGroupsSequence")
        out = []
        for n, fg in enumerate(ds.PerFrameFunctionalGroupsSequence):
            def get(seqname, attr, default=None, fg=fg):
                for owner in (fg, shared):
                    if owner is None:
                        continue
                    item = _first(owner, seqname)
                    if item is not None and attr in item:
                        return item.get(attr)
                return default

            ipp = get("PlanePositionSequence", "ImagePositionPatient")
            iop = get("PlaneOrientationSequence", "ImageOrientationPatient")
            ps = get("PixelMeasuresSequence", "PixelSpacing")
            th = get("PixelMeasuresSequence", "SliceThickness")
            te = get("MREchoSequence", "EffectiveEchoTime")
            slope = get("PixelValueTransformationSequence", "RescaleSlope", getattr(ds, "RescaleSlope", 1.0))
            icpt = get("PixelValueTransformationSequence", "RescaleIntercept", getattr(ds, "RescaleIntercept", 0.0))
            ftype = get("MRImageFrameTypeSequence", "FrameType")
            ccomp = get("MRImageFrameTypeSequence", "ComplexImageComponent")
            slope, icpt = _philips_fp(fg.get((0x2005, 0x140F)), _f(slope, 1.0), _f(icpt, 0.0))
            temporal = get("FrameContentSequence", "TemporalPositionIndex")
            stack_pos = get("FrameContentSequence", "InStackPositionNumber")
            echo_no = None
            out.append(Frame(
                path, n,
                None if ipp is None else np.array([float(v) for v in ipp]),
                None if iop is None else np.array([float(v) for v in iop]),
                None if ps is None else (float(ps[0]), float(ps[1])),
                _f(th), _f(te), echo_no, _component(getattr(ds, "ImageType", None), ftype, ccomp),
                int(stack_pos or n), None if temporal is None else int(temporal),
                _f(slope, 1.0), _f(icpt, 0.0), rows, cols,
            ))
        return out
    ipp = getattr(ds, "ImagePositionPatient", None)
    iop = getattr(ds, "ImageOrientationPatient", None)
    ps = getattr(ds, "PixelSpacing", None)
    te = _f(getattr(ds, "EchoTime", None))
    itype = [str(v).upper() for v in (getattr(ds, "ImageType", None) or [])]
    if "MOSAIC" in itype and (0x0019, 0x100A) in ds and ipp is not None and iop is not None and ps is not None:
        return _mosaic_frames(ds, path, te)
    return [Frame(
        path, None,
        None if ipp is None else np.array([float(v) for v in ipp]),
        None if iop is None else np.array([float(v) for v in iop]),
        None if ps is None else (float(ps[0]), float(ps[1])),
        _f(getattr(ds, "SliceThickness", None)), te,
        int(ds.EchoNumbers) if "EchoNumbers" in ds and str(ds.EchoNumbers).strip() not in ("",) and _f(ds.EchoNumbers) is not None else None,
        _component(getattr(ds, "ImageType", None)),
        int(getattr(ds, "InstanceNumber", 0) or 0),
        int(ds.TemporalPositionIdentifier) if "TemporalPositionIdentifier" in ds and _f(ds.TemporalPositionIdentifier) is not None else None,
        *_philips_fp([ds], _f(getattr(ds, "RescaleSlope", 1.0), 1.0), _f(getattr(ds, "RescaleIntercept", 0.0), 0.0)),
        int(ds.Rows), int(ds.Columns),
    )]


def _mosaic_frames(ds, path: Path, te) -> list[Frame]:
    """Siemens mosaic: one file holding n tiles (slices) on an m x m grid.

    The stored ImagePositionPatient is that of the whole mosaic; the first tile's position is
    shifted by half the size difference (the correction dcm2niix and nibabel apply); slices are
    stacked along the CSA SliceNormalVector at SpacingBetweenSlices.
    """
    n = int(ds[0x0019, 0x100A].value)
    m = int(np.ceil(np.sqrt(n)))
    rows, cols = int(ds.Rows) // m, int(ds.Columns) // m
    iop = np.array([float(v) for v in ds.ImageOrientationPatient])
    row, col = iop[:3], iop[3:]
    rs, cs = (float(v) for v in ds.PixelSpacing)
    ipp = np.array([float(v) for v in ds.ImagePositionPatient])
    ipp0 = ipp + row * cs * (int(ds.Columns) - cols) / 2 + col * rs * (int(ds.Rows) - rows) / 2
    normal = np.cross(row, col)
    try:
        with warnings.catch_warnings():  # nibabel warns that its DICOM readers are experimental; only CSA is used
            warnings.simplefilter("ignore", UserWarning)
            from nibabel.nicom import csareader

        csa = csareader.get_csa_header(ds, "image")
        sn = csareader.get_slice_normal(csa)
        if sn is not None and np.dot(sn, normal) < 0:
            normal = -normal
    except Exception:  # noqa: BLE001 -- no CSA header: keep the right-handed normal
        pass
    step = _f(getattr(ds, "SpacingBetweenSlices", None)) or _f(getattr(ds, "SliceThickness", None)) or 1.0
    out = []
    for k in range(n):
        out.append(Frame(path, None, ipp0 + k * step * normal, iop, (rs, cs), _f(getattr(ds, "SliceThickness", None)),
                         te, None, _component(getattr(ds, "ImageType", None)), int(getattr(ds, "InstanceNumber", 0) or 0),
                         None, _f(getattr(ds, "RescaleSlope", 1.0), 1.0), _f(getattr(ds, "RescaleIntercept", 0.0), 0.0),
                         rows, cols, tile=(m, k)))
    return out


def _candidate_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name in _SKIP_NAMES or name.startswith("."):
                continue
            p = Path(dirpath) / name
            if p.suffix.lower() in _SKIP_SUFFIXES and not name.lower().endswith(".dcm.gz"):
                continue
            files.append(p)
    return sorted(files)


def _place_signature(frames: list[Frame]) -> tuple:
    """Where the frames of one file lie (frame number, mosaic tile, component, position to 1 um)."""
    return tuple((f.index, None if f.tile is None else f.tile[1], f.component,
                  None if f.ipp is None else tuple(np.round(f.ipp, 3).tolist())) for f in frames)


def _drop_duplicates(records: list) -> tuple[list, list]:
    """Files holding the same instance (same series, SOPInstanceUID and frame positions) counted once.

    Copies of one instance (the same image exported twice, or stored once compressed and once
    uncompressed) would otherwise become extra volumes. The copy whose pixels are read directly
    (uncompressed little endian) is kept, else the first in path order. Files sharing a
    SOPInstanceUID at different positions are left as they are. Returns the records kept and
    (kept path, dropped path, SOPInstanceUID, dropped layout, same rescale) per dropped file.
    """
    groups: dict[tuple, list[int]] = defaultdict(list)
    for n, (p, ds, layout, frames, uid, snum) in enumerate(records):
        sop = str(ds.get("SOPInstanceUID", "") or "").strip()
        if sop:
            groups[(uid, str(snum), sop, _place_signature(frames))].append(n)
    dropped: set[int] = set()
    dups = []
    for (_, _, sop, _), idx in groups.items():
        if len(idx) < 2:
            continue
        keep = next((n for n in idx if records[n][2] is not None), idx[0])
        kept = records[keep]
        for n in idx:
            if n == keep:
                continue
            dropped.add(n)
            same_rescale = [(f.slope, f.intercept) for f in kept[3]] == [(f.slope, f.intercept) for f in records[n][3]]
            dups.append((kept[0], records[n][0], sop, records[n][2], same_rescale))
    dups.sort(key=lambda d: (str(d[1]), str(d[0])))
    return [r for n, r in enumerate(records) if n not in dropped], dups


def _check_duplicates(info: SeriesInfo) -> None:
    """Copies of an instance left out by :func:`scan_folder` must hold the same pixel values as the copy
    used; otherwise a DicomError names both files and the SOPInstanceUID."""
    for keep, drop, sop, layout, same_rescale in info.duplicates:
        a = _pixels(keep, info.layouts.get(keep))
        b = _pixels(drop, layout)
        if not (same_rescale and a.shape == b.shape and np.array_equal(a, b)):
            raise DicomError(f"same DICOM instance as {drop} (SOPInstanceUID {sop}, same position) but different "
                             "pixel data", path=keep, hint="two different images carry one UID: remove the wrong copy")


def scan_folder(path: str | os.PathLike, *, workers: int | None = None) -> list[SeriesInfo]:
    """Headers of every DICOM image under ``path`` (file or folder, recursive), grouped into series.

    Non-DICOM files are ignored (recognised by their first bytes, never parsed by pydicom); a single
    non-DICOM file is refused. Magnitude and phase images of one series are separate entries. Copies
    of one instance (same SOPInstanceUID and position) count once, with one warning (see
    :func:`_drop_duplicates`; :func:`read_series` checks that their pixels agree).
    """
    root = Path(path)
    if not root.exists():
        raise InputError("no such file or folder", path=root, hint="check the path")
    files = _candidate_files(root)
    if not files:
        raise InputError("folder is empty", path=root, hint="point to a folder holding DICOM files")

    if root.is_file() and not _looks_like_dicom(root):
        raise DicomError("not a DICOM or NIfTI file", path=root,
                         hint="discmeasure reads DICOM files and folders, NIfTI .nii/.nii.gz and MHA/NRRD images")
    segs = []  # DICOM Segmentation instances met (not images; named in the error if nothing else is found)

    def head(p):
        if not _looks_like_dicom(p):  # NIfTI, NumPy, HTML, ...: never parsed as DICOM
            return p, None, None
        try:
            ds, layout = _read_head(p)
        except Exception:  # noqa: BLE001 -- not DICOM: ignored
            return p, None, None
        if not _is_image(ds):
            if _is_seg(ds):
                segs.append(p)
            return p, None, None
        return p, ds, layout

    # header parsing is pure Python (holds the GIL): threads only pay off to overlap slow reads
    # (network storage, cold cache; pass workers=); on local files they slow the scan down.
    workers = workers or 1
    with _quiet_pydicom():
        if workers <= 1 or len(files) < 4:
            heads = [head(p) for p in files]
        else:
            with ThreadPoolExecutor(workers) as ex:
                heads = list(ex.map(head, files))
    records = []  # (path, dataset, layout, frames, series uid, series number text)
    bad = []
    for p, ds, layout in heads:
        if ds is None:
            continue
        try:
            frames = _frames_of(ds, p)
        except Exception as exc:  # noqa: BLE001
            bad.append((p, exc))
            continue
        uid = str(getattr(ds, "SeriesInstanceUID", "") or f"nouid:{p.parent}")
        records.append((p, ds, layout, frames, uid, getattr(ds, "SeriesNumber", "")))
    records, dups = _drop_duplicates(records)
    series: dict[str, SeriesInfo] = {}
    keys_of: dict[Path, set] = defaultdict(set)
    for p, ds, layout, frames, uid, snum in records:
        for fr in frames:
            key = f"{uid}|{snum}|{fr.component}"
            s = series.get(key)
            if s is None:
                num = getattr(ds, "SeriesNumber", None)
                s = series[key] = SeriesInfo(key, uid, int(num) if _f(num) is not None else None,
                                             str(getattr(ds, "SeriesDescription", "") or getattr(ds, "ProtocolName", "") or ""),
                                             header=ds, gz=p.name.endswith(".gz"))
            s.frames.append(fr)
            s.layouts[p] = layout
            keys_of[p].add(key)
    for d in dups:
        for key in sorted(keys_of[d[0]]):
            series[key].duplicates.append(d)
    if dups:
        keep, drop = dups[0][0], dups[0][1]
        warnings.warn(f"{root}: {len(dups)} file{'s' if len(dups) > 1 else ''} repeat{'' if len(dups) > 1 else 's'} "
                      f"a DICOM instance already found (same SOPInstanceUID and position, e.g. {drop.name} = "
                      f"{keep.name}): one copy of each instance used", UserWarning, stacklevel=2)
    if not series:
        if bad:
            p, exc = bad[0]
            raise DicomError(f"DICOM header unreadable ({type(exc).__name__}: {exc})", path=p, hint="the file may be damaged")
        if segs:
            raise DicomError("holds a DICOM SEG (a segmentation of another series), no image", path=root,
                             hint="give it as a label map (--labels FILE, or labels= in the library) with its image series")
        nifti = sorted(Path(root).glob("*.nii*")) if Path(root).is_dir() else []
        hint = ("the folder holds NIfTI files: give one of them, e.g. " + nifti[0].name if nifti else
                "point to a DICOM series or study folder, a DICOM file, or a NIfTI file")
        raise DicomError("no DICOM images found", path=root, hint=hint)
    return sorted(series.values(), key=lambda s: (s.number if s.number is not None else 1 << 30, s.key))


#: how a selector names a component of a series (lower case -> component letter): the letters that
#: ``discmeasure info`` shows in brackets ("[P]"), the words of the error listings ("(phase)")
_COMPONENT_WORDS = {"phase": "P", "real": "R", "imaginary": "I", "magnitude": "M"}
_COMPONENT_LETTERS = {"p": "P", "r": "R", "i": "I", "m": "M"}
_COMPONENT_NAMES = {"M": "magnitude", "P": "phase", "R": "real", "I": "imaginary"}
#: a selector ending in a component: "phase", "P" or "[P]" alone, "<selector> phase", "<selector> [P]",
#: "<selector> (phase)"; a bare letter only alone or in brackets (a description may end in "... R")
_COMPONENT_RE = re.compile(r"^(?P<rest>.*?)(?:\[(?P<bracket>\w+)\]|\((?P<paren>\w+)\)|(?:^|(?<=\s))(?P<word>[A-Za-z]+))$")


def _component_of(s: SeriesInfo) -> str:
    """The component letter of a series entry ("M", "P", "R", "I"; "" unknown), the last part of its key."""
    return s.key.rsplit("|", 1)[-1]


def _split_component(text: str) -> tuple[str, str | None]:
    """Split a series selector into (the rest, the component it asks for, or None).

    ``"phase"``, ``"P"``, ``"[P]"`` -> ("", "P"); ``"2001 phase"``, ``"2001 [P]"``,
    ``"fcMRI Field Mapping (phase)"`` -> ("2001" / "fcMRI Field Mapping", "P"); ``"T2 TSE SAG"`` ->
    ("T2 TSE SAG", None). A bare letter (P, R, I, M) counts only alone or in brackets.
    """
    m = _COMPONENT_RE.match(text.strip())
    if m is None:
        return text, None
    rest = m.group("rest").strip()
    token = (m.group("bracket") or m.group("paren") or m.group("word") or "").lower()
    if token in _COMPONENT_WORDS:
        return rest, _COMPONENT_WORDS[token]
    if token in _COMPONENT_LETTERS and (m.group("bracket") or not rest):
        return rest, _COMPONENT_LETTERS[token]
    return text, None


def _plain_hits(series: list[SeriesInfo], text: str) -> list[SeriesInfo]:
    """Series matching ``text`` as a number, UID, key or description text.

    A number (all digits) that is the SeriesNumber of some series selects those series only: a
    series number the user gave wins over descriptions that merely contain its digits
    ("t2_tse_sag_384"); a number no series has is matched against the descriptions.
    """
    if text.isdigit():
        numbered = [s for s in series if s.number == int(text)]
        if numbered:
            return numbered
    ids = [s for s in series if text in (s.uid, s.key)]
    if ids:
        return ids
    return [s for s in series if text.lower() in s.description.lower()]


def _hits(series: list[SeriesInfo], sel) -> tuple[list[SeriesInfo], str | None, str]:
    """(series matching ``sel``, the component ``sel`` asks for or None, the text compared with descriptions).

    An int is a series number. A string is a component request when it names one (see
    :func:`_split_component`) and the folder has series of that component matching the rest;
    otherwise it is matched as a whole by :func:`_plain_hits`.
    """
    if isinstance(sel, (int, np.integer)):
        return [s for s in series if s.number == int(sel)], None, str(sel)
    text = str(sel).strip()
    rest, comp = _split_component(text)
    if comp is not None:
        pool = [s for s in series if _component_of(s) == comp]
        hits = _plain_hits(pool, rest) if rest else pool
        if hits:
            return hits, comp, rest
    return _plain_hits(series, text), None, text


def select_series(series: list[SeriesInfo], sel, path) -> SeriesInfo:
    """One series of a folder, by number, UID, description text and/or component.

    Parameters
    ----------
    series : list of SeriesInfo
        The series of the folder (:func:`scan_folder`).
    sel : int, str or None
        ``None``: the only series, or the magnitude of the only acquisition. An int or a string of
        digits: the series with that SeriesNumber (a description containing the digits matches only
        when no series has that number). Otherwise a SeriesInstanceUID or text of the description.
        ``"phase"``, ``"P"`` or ``"[P]"`` (``real``/``R``, ``imaginary``/``I`` likewise; ``info``
        shows the component as ``[P]``) select that component, alone or after a number or
        description (``"2001 phase"``, ``"fcMRI Field Mapping [P]"``).
    path : str or PathLike
        The folder, named in errors.

    Returns
    -------
    SeriesInfo
        When several series match: the one whose description is exactly the text; else, when no
        component was asked for, the only magnitude among them (magnitude preferred over phase).

    Raises
    ------
    SeriesSelectionError
        No series, or several, match (one line listing them, with what to give instead).
    """
    others = [c for c in "PRI" if any(_component_of(s) == c for s in series)]
    comp_hint = ("; add " + ", ".join(f"{_COMPONENT_NAMES[c]} or [{c}]" for c in others)
                 + " for that component") if others else ""
    if sel is None:
        mags = [s for s in series if s.key.endswith("|M")]
        if len(series) == 1:
            return series[0]
        if len({s.uid for s in series}) == 1 and len(mags) == 1:
            return mags[0]
        listing = "; ".join(s.label() for s in series)
        raise SeriesSelectionError(f"{len(series)} series found: {listing}", path=path,
                                   hint="choose one with series= (number, UID or description)" + comp_hint)
    hits, comp, text = _hits(series, sel)
    if len(hits) > 1:
        exact = [s for s in hits if s.description.lower() == text.lower()]
        mags = [s for s in hits if s.key.endswith("|M")] if comp is None else []
        hits = exact if len(exact) == 1 else (mags if len(mags) == 1 else hits)
    if not hits:
        listing = "; ".join(s.label() for s in series)
        raise SeriesSelectionError(f"no series matches {sel!r}; found: {listing}", path=path,
                                   hint="give a series number, UID or part of the description" + comp_hint)
    if len(hits) > 1:
        listing = "; ".join(s.label() for s in hits)
        raise SeriesSelectionError(f"{len(hits)} series match {sel!r}: {listing}", path=path,
                                   hint="be more specific: give the series number or UID" + comp_hint)
    return hits[0]


def _geometry(frames: list[Frame], path):
    if any(f.iop is None or f.ipp is None or f.spacing is None for f in frames):
        raise GeometryError("images carry no position/orientation/pixel spacing (ImagePositionPatient, "
                            "ImageOrientationPatient, PixelSpacing)", path=path,
                            hint="geometry is required for measurements in mm; export the series with full headers")
    iop0 = frames[0].iop
    bad = [f for f in frames if np.max(np.abs(f.iop - iop0)) > 1e-3]
    if bad:
        names = ", ".join(sorted({b.path.name for b in bad})[:5])
        raise GeometryError(f"slice orientation differs within the series ({len(bad)} images, e.g. {names})", path=path,
                            hint="the series mixes planes (e.g. a localizer): choose or export one plane")
    row, col = iop0[:3], iop0[3:]
    row = row / np.linalg.norm(row)
    col = col / np.linalg.norm(col)
    normal = np.cross(row, col)
    return row, col, normal


def _volumes(frames: list[Frame], normal) -> tuple[list[list[Frame]], str, list[float] | None]:
    """Split frames into volumes (echo / time) with slices sorted along the normal."""
    tes = sorted({round(f.te, 3) for f in frames if f.te is not None})
    pos = np.array([float(f.ipp @ normal) for f in frames])
    upos = np.unique(np.round(pos, 3))
    if len(tes) > 1 and len(frames) == len(tes) * len(upos):
        groups = [[f for f in frames if f.te is not None and round(f.te, 3) == te] for te in tes]
        kind = "echo"
        tlist = list(tes)
    else:
        nper = len(frames) // max(len(upos), 1)
        if nper <= 1 or len(frames) % len(upos):
            groups = [frames]
        else:
            # same position repeated: order by temporal index / instance number
            bypos = defaultdict(list)
            for f, p in zip(frames, np.round(pos, 3)):
                bypos[p].append(f)
            for p in bypos:
                bypos[p].sort(key=lambda f: (f.temporal if f.temporal is not None else 0, f.instance, f.index or 0))
            groups = [[bypos[p][v] for p in bypos] for v in range(nper)]
        kind = "time" if len(groups) > 1 else ""
        tlist = None
    for g in groups:
        g.sort(key=lambda f: float(f.ipp @ normal))
    return groups, kind, tlist


def _pixels(p: Path, layout) -> np.ndarray:
    """Pixel array of one file (native layout read directly, else pydicom), errors as DicomError."""
    try:
        if layout is not None:
            return _read_native(p, layout)
        return _read(p, stop_before_pixels=False).pixel_array
    except Exception as exc:  # noqa: BLE001
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DicomError(f"pixel data cannot be decoded ({type(exc).__name__}: {msg[:160]})", path=p,
                         hint="the file is truncated/damaged or uses a compression no installed codec handles") from None


def _decode(frames_by_vol: list[list[Frame]], path, workers=None, layouts=None) -> np.ndarray:
    """Pixel array (cols, rows, slices, volumes) with rescale applied (integer kept when identity).

    Files are read and placed into the output in parallel threads (file reads, codecs and numpy
    copies release the GIL); no file's pixels are held longer than needed for its own slices.
    The values are stored slice by slice as the files hold them, (volumes, slices, rows, cols) in
    C order, and returned as the transposed view: a Fortran-ordered (cols, rows, slices, volumes)
    array, like the arrays nibabel returns for NIfTI files (copying into C order cost more than
    all the rest of the loading).
    """
    layouts = layouts or {}
    by_file: dict[Path, list] = defaultdict(list)
    for v, g in enumerate(frames_by_vol):
        for k, f in enumerate(g):
            by_file[f.path].append((v, k, f))
    files = sorted(by_file)
    f0 = frames_by_vol[0][0]
    nz, nv = len(frames_by_vol[0]), len(frames_by_vol)
    identity = all(f.slope == 1.0 and f.intercept == 0.0 for g in frames_by_vol for f in g)
    sample = _pixels(f0.path, layouts.get(f0.path))
    dtype = sample.dtype.newbyteorder("=") if identity else np.float32
    buf = np.empty((nv, nz, f0.rows, f0.cols), dtype=dtype)

    def place(p, arr=None):
        if arr is None:
            arr = _pixels(p, layouts.get(p))
        for v, k, f in by_file[p]:
            img = arr[f.index] if f.index is not None and arr.ndim == 3 else arr
            if f.tile is not None:
                m, t = f.tile
                r0, c0 = (t // m) * f.rows, (t % m) * f.cols
                img = img[r0:r0 + f.rows, c0:c0 + f.cols]
            if img.ndim != 2:
                raise DicomError(f"unexpected pixel array shape {arr.shape}", path=f.path,
                                 hint="colour or multi-sample images are not MR magnitude images")
            if img.shape != (f.rows, f.cols):
                raise DicomError(f"pixel array {img.shape} does not match Rows x Columns {(f.rows, f.cols)}", path=f.path)
            dst = buf[v, k]
            dst[...] = img
            if not identity:  # float32(value) * float32(slope) + float32(intercept)
                dst *= np.float32(f.slope)
                dst += np.float32(f.intercept)

    place(f0.path, sample)
    del sample
    rest = [p for p in files if p != f0.path]
    n = workers or min(4, os.cpu_count() or 1)
    if n <= 1 or len(rest) < 2:
        for p in rest:
            place(p)
    else:
        with ThreadPoolExecutor(n) as ex:
            list(ex.map(place, rest))  # re-raises the first failure (in file order)
    return buf.transpose(3, 2, 1, 0)


_META_FIELDS = {
    "Modality": ("modality", str),
    "SeriesDescription": ("series_description", str),
    "SeriesNumber": ("series_number", int),
    "ProtocolName": ("protocol_name", str),
    "SequenceName": ("sequence_name", str),
    "ScanningSequence": ("scanning_sequence", lambda v: "\\".join(v) if not isinstance(v, str) else v),
    "ImageType": ("image_type", lambda v: "\\".join(v) if not isinstance(v, str) else v),
    "Manufacturer": ("vendor", str),
    "ManufacturerModelName": ("model", str),
    "MagneticFieldStrength": ("field_strength_t", float),
    "RepetitionTime": ("repetition_time_ms", float),
    "FlipAngle": ("flip_angle_deg", float),
    "EchoTrainLength": ("echo_train_length", int),
    "SliceThickness": ("slice_thickness_mm", float),
    "SpacingBetweenSlices": ("spacing_between_slices_mm", float),
    "PixelBandwidth": ("pixel_bandwidth_hz", float),
    "StudyInstanceUID": ("study_uid", str),
    "SeriesInstanceUID": ("series_uid", str),
    "FrameOfReferenceUID": ("frame_of_reference_uid", str),
    "AcquisitionDate": ("acquisition_date", str),
}
_PHI_FIELDS = {"PatientName": "patient_name", "PatientID": "patient_id", "PatientBirthDate": "patient_birth_date",
               "PatientSex": "patient_sex", "AccessionNumber": "accession_number"}


def _meta(ds, frames, kind, tes) -> tuple[dict, dict]:
    meta: dict = {}
    for tag, (key, conv) in _META_FIELDS.items():
        if tag in ds:
            v = ds.get(tag)
            if v is None or (isinstance(v, str) and not v.strip()):
                continue
            try:
                meta[key] = conv(v)
            except (TypeError, ValueError):
                continue
    if "RepetitionTime" not in ds:  # enhanced: in a functional group
        try:
            meta["repetition_time_ms"] = float(ds.SharedFunctionalGroupsSequence[0].MRTimingAndRelatedParametersSequence[0].RepetitionTime)
        except (AttributeError, IndexError, KeyError, TypeError, ValueError):
            pass
    if "acquisition_date" not in meta and "StudyDate" in ds and str(ds.StudyDate).strip():
        meta["acquisition_date"] = str(ds.StudyDate)
    if frames[0].thickness is not None:
        meta["slice_thickness_mm"] = frames[0].thickness
    if tes and len(tes) > 1:
        diffs = np.diff(tes)
        if np.allclose(diffs, diffs[0], rtol=1e-3) and abs(tes[0] - diffs[0]) < 1e-3 * max(tes[0], 1):
            meta["echo_spacing_ms"] = float(diffs[0])
        elif np.allclose(diffs, diffs[0], rtol=1e-3):
            meta["echo_spacing_ms"] = float(diffs[0])
    elif frames[0].te is not None:
        meta["echo_time_ms"] = float(frames[0].te)
    seq = str(meta.get("scanning_sequence", "")).upper()
    if "SE" in seq and "flip_angle_deg" in meta and meta["flip_angle_deg"] > 90:
        meta["refocusing_angle_deg"] = meta["flip_angle_deg"]
    if kind:
        meta["volume_kind"] = kind
    meta["source_format"] = "dicom"
    meta["source_files"] = len({f.path for f in frames})
    phi = {key: str(ds.get(tag)) for tag, key in _PHI_FIELDS.items() if tag in ds and str(ds.get(tag)).strip()}
    return meta, phi


def read_series(info: SeriesInfo, path=None) -> Scan:
    """Decode one series into a Scan (geometry checked, volumes on the last axis)."""
    path = path or (info.frames[0].path.parent if info.frames else None)
    frames = info.frames
    row, col, normal = _geometry(frames, path)
    groups, kind, tes = _volumes(frames, normal)
    nz = len(groups[0])
    if any(len(g) != nz for g in groups):
        raise GeometryError(f"volumes have different slice counts ({sorted({len(g) for g in groups})})", path=path,
                            hint="the series is incomplete: re-export it")
    pos = np.array([float(f.ipp @ normal) for f in groups[0]])
    if nz > 1:
        d = np.diff(pos)
        if np.any(np.abs(d) < 1e-4):
            dup = [groups[0][i].path.name for i in np.flatnonzero(np.abs(d) < 1e-4)[:4]]
            raise GeometryError(f"two images at the same slice position (e.g. {', '.join(dup)})", path=path,
                                hint="the series holds repeated or mixed images: choose a single acquisition")
        step = float(np.median(d))
        dev = np.abs(d - step)
        if np.max(dev) > 0.02 * abs(step) + 1e-3:
            bad = np.flatnonzero(dev > 0.02 * abs(step) + 1e-3)
            where = ", ".join(f"{i + 1}-{i + 2} ({d[i]:.2f} mm)" for i in bad[:6])
            raise GeometryError(f"uneven slice spacing (median {step:.3f} mm; slices {where})", path=path,
                                hint="missing or extra slices: re-export the complete series")
        if np.max(dev) > 1e-3:
            warnings.warn(f"{path}: slice spacing jitter up to {np.max(dev):.4f} mm (median {step:.4f} mm) ignored",
                          stacklevel=2)
        # in-plane position of each slice must follow the normal (no shear)
        ipps = np.array([f.ipp for f in groups[0]])
        pred = ipps[0] + np.outer(pos - pos[0], normal)
        if np.max(np.linalg.norm(ipps - pred, axis=1)) > 0.05 + 0.01 * abs(step):
            raise GeometryError("slices are sheared (positions not along the slice normal; gantry tilt?)", path=path,
                                hint="resample the series to an orthogonal grid before measuring")
    else:
        ds = info.header
        step = _f(getattr(ds, "SpacingBetweenSlices", None)) or frames[0].thickness or 1.0
    rs, cs = frames[0].spacing
    lps = np.eye(4)
    lps[:3, 0] = row * cs
    lps[:3, 1] = col * rs
    lps[:3, 2] = normal * step
    lps[:3, 3] = groups[0][0].ipp
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    with _quiet_pydicom():
        data = _decode(groups, path, layouts=info.layouts)
        _check_duplicates(info)
    if data.shape[3] == 1:
        data = data[..., 0]
    meta, phi = _meta(info.header, frames, kind, tes)
    return Scan(data, ras, echo_times_ms=tes if kind == "echo" else None, meta=meta, phi=phi)


def series_summary(info: SeriesInfo) -> dict:
    """A PHI-free summary of a series (no pixel decoding).

    ``spacing_mm`` is (column, row, slice) spacing; for a single-slice series the slice value is its
    SpacingBetweenSlices or SliceThickness, None when the header has neither. ``number`` is None when
    the series has no SeriesNumber.
    """
    ds = info.header
    out = {"number": info.number, "uid": info.uid, "description": info.description, "images": info.n_images,
           "component": info.key.rsplit("|", 1)[-1], "echo_times_ms": info.echo_times}
    try:
        row, col, normal = _geometry(info.frames, None)
        groups, kind, tes = _volumes(info.frames, normal)
        import nibabel as nib

        lps = np.eye(4)
        lps[:3, 0], lps[:3, 1], lps[:3, 2] = row, col, normal
        out["orientation"] = "".join(nib.aff2axcodes(np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps))
        out["plane"] = ("sagittal", "coronal", "axial")[int(np.argmax(np.abs(normal)))]
        rs, cs = info.frames[0].spacing
        pos = sorted(float(f.ipp @ normal) for f in groups[0])
        if len(pos) > 1:
            step = float(np.median(np.diff(pos)))
        else:  # one slice: the slice step read_series uses (SpacingBetweenSlices, else thickness), None if neither
            step = _f(getattr(ds, "SpacingBetweenSlices", None)) or info.frames[0].thickness
        out["shape"] = [info.frames[0].cols, info.frames[0].rows, len(groups[0])] + ([len(groups)] if len(groups) > 1 else [])
        out["spacing_mm"] = [round(cs, 4), round(rs, 4), None if step is None else round(step, 4)]
        out["volumes"] = len(groups)
        out["volume_kind"] = kind
    except GeometryError:
        out["orientation"] = None
        out["plane"] = None
        out["shape"] = [info.frames[0].cols, info.frames[0].rows, len(info.frames)]
    for tag, key in (("RepetitionTime", "repetition_time_ms"), ("ScanningSequence", "scanning_sequence"),
                     ("MagneticFieldStrength", "field_strength_t")):
        v = ds.get(tag) if tag in ds else None
        if v is not None:
            out[key] = "\\".join(v) if (not isinstance(v, str) and hasattr(v, "__iter__")) else (_f(v) if key != "scanning_sequence" else str(v))
    return out
