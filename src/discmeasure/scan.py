"""The :class:`Scan`: an image array with its voxel-to-world affine.

All geometry in discmeasure is done in physical millimetres through the affine,
in the RAS+ world of NIfTI and nibabel: world x increases towards the patient's
Right, y towards Anterior, z towards Superior. The order of the array axes is
never taken to mean anything anatomical.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from .errors import GeometryError, InputError

__all__ = ["Scan", "META_KEYS", "PHI_KEYS", "count_nonfinite", "finite_scan", "check_echo_times_ms"]

#: Keys a Scan's ``meta`` may hold (all optional). Units are in the names.
META_KEYS = (
    "modality",  # "MR"
    "series_description",
    "series_number",
    "protocol_name",
    "sequence_name",
    "scanning_sequence",
    "image_type",
    "vendor",
    "model",
    "field_strength_t",
    "repetition_time_ms",
    "echo_time_ms",  # single-echo series
    "flip_angle_deg",  # excitation (GRE) or refocusing (SE, as stored by vendors)
    "refocusing_angle_deg",
    "echo_spacing_ms",
    "echo_train_length",
    "slice_thickness_mm",
    "spacing_between_slices_mm",
    "pixel_bandwidth_hz",
    "study_uid",
    "series_uid",
    "frame_of_reference_uid",
    "acquisition_date",
    "volume_kind",  # "echo", "time", "diffusion", ... for 4-D data
    "source_format",  # "dicom", "nifti", "sitk"
    "source_files",  # number of files read
)

#: Patient-identifying fields. Kept in ``Scan.phi``, never in ``meta``, never printed.
PHI_KEYS = ("patient_name", "patient_id", "patient_birth_date", "patient_sex", "accession_number")


#: echo times whose largest is below this (ms) cannot be milliseconds of an MR echo train: they are
#: seconds (BIDS ``EchoTime``) given as ms. Spin-echo trains end at 50-400 ms, in seconds 0.05-0.4.
MIN_LONGEST_TE_MS = 1.0


def check_echo_times_ms(tes, error=InputError) -> None:
    """Raise ``error`` (one line) when echo times cannot be milliseconds: the largest is below
    :data:`MIN_LONGEST_TE_MS` (0.01-0.08 are seconds; a T2 fit on them gave T2 = 1 ms everywhere)."""
    te = np.asarray(tes, float).ravel()
    if te.size and np.all(np.isfinite(te)) and te.max() < MIN_LONGEST_TE_MS:
        raise error("echo times are in ms", hint=f"got {te.min():g}-{te.max():g}: seconds? multiply by 1000")


def count_nonfinite(data) -> int:
    """Number of NaN or infinite values in ``data`` (0 for integer and boolean data).

    An all-finite float array is recognised from its minimum and maximum (NaN and +-inf propagate
    into them), without a full-size temporary.
    """
    arr = np.asarray(data)
    if arr.dtype.kind not in "fc" or arr.size == 0:
        return 0
    if arr.dtype.kind == "f" and np.isfinite(arr.min()) and np.isfinite(arr.max()):
        return 0
    return int(arr.size - np.count_nonzero(np.isfinite(arr)))


def own_description(meta) -> str | None:
    """The series description to write or show: only one discmeasure made (``"discmeasure ..."``).

    The scanner's SeriesDescription and ProtocolName are free text that technologists sometimes
    extend with the patient's name; DICOM's de-identification profile removes them (PS3.15 Annex
    E; the DICOM SEG/SR do), so sidecars, NIfTI headers, provenance and reprs leave them out as
    well. They stay in ``Scan.meta`` for choosing series in the session.
    """
    desc = (meta or {}).get("series_description")
    return str(desc) if desc and str(desc).startswith("discmeasure") else None


def finite_scan(scan: "Scan", *, what: str = "image") -> "Scan":
    """``scan`` with its NaN and infinite voxels read as background (0), for the steps that read
    its intensities as anatomy (segmentation).

    ``scan`` itself when every voxel is finite; InputError when none is; otherwise a new Scan on the
    same grid (the caller's array is not touched) with a one-line warning giving their count.
    NaN padding from resampling or registration is common; one such voxel made the automatic
    segmentation call the image blank, one infinite voxel failed in numpy.
    """
    data = scan.data
    n_bad = count_nonfinite(data)
    if n_bad == 0:
        return scan
    if n_bad == data.size:
        raise InputError(f"{what} holds only NaN/infinite values", hint="the file or array has no usable data")
    warnings.warn(f"{what} holds {n_bad} NaN/infinite voxel(s) of {data.size}: read as 0 (background)",
                  UserWarning, stacklevel=3)
    clean = np.where(np.isfinite(data), data, 0).astype(data.dtype, copy=False)
    return Scan(clean, scan.affine, echo_times_ms=scan.echo_times_ms, meta=scan.meta, phi=scan.phi)


def _check_affine(affine) -> np.ndarray:
    try:
        a = np.array(affine, dtype=float)
    except (TypeError, ValueError):
        raise GeometryError("affine is not a numeric 4x4 matrix") from None
    if a.shape != (4, 4):
        raise GeometryError(f"affine must be 4x4, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise GeometryError("affine contains NaN or infinite values", hint="the file's geometry header is broken")
    if not np.allclose(a[3], [0, 0, 0, 1]):
        raise GeometryError("affine bottom row is not [0, 0, 0, 1]")
    det = np.linalg.det(a[:3, :3])
    if not np.isfinite(det) or abs(det) < 1e-9:
        raise GeometryError(
            "affine is singular (zero voxel size or degenerate orientation)",
            hint="the file carries no usable geometry; re-export it with orientation and spacing",
        )
    return a


class Scan:
    """An MR image with its geometry.

    Parameters
    ----------
    data : array_like
        Image with the three spatial axes first (a 2-D array is taken as one
        slice and given a third axis of length 1) and, for multi-echo or other
        multi-volume data, one more axis last. For segmentation: the scanner's
        magnitude image, background near 0 (see Notes).
    affine : array_like, shape (4, 4)
        Voxel-index -> world transform in RAS+ millimetres (nibabel convention).
    echo_times_ms : sequence of float, optional
        Echo time of each volume along the last axis (multi-echo data), in ms.
        Several echo times whose longest is below 1 ms are refused (InputError):
        they are seconds (a BIDS sidecar's ``EchoTime``), multiply them by 1000.
    meta : mapping, optional
        Acquisition metadata, keys from :data:`META_KEYS`. Patient-identifying
        keys (:data:`PHI_KEYS`) found here are moved to :attr:`phi`.
    phi : mapping, optional
        Patient-identifying fields; never printed, logged or written by default.

    Notes
    -----
    A Scan is immutable in spirit: ``data`` is not copied; the Scan holds a
    read-only view of it (the caller's own array stays writable, and is never
    modified); derived scans are new objects. A Scan can be pickled (for
    ``multiprocessing``, ``concurrent.futures`` or joblib); ``phi`` travels with it.

    Intensities: the automatic segmentation (:func:`discmeasure.segment`, and so
    :func:`discmeasure.analyze`) expects the scanner's **magnitude** image, with
    background (air) near 0; any scale is fine. Intensity-normalised arrays
    (z-scored, mean-subtracted, or with an offset added) are refused there.
    NaN/infinite voxels are kept here and read as 0 (background), with a warning,
    by the segmentation. Echo times are in milliseconds (a BIDS sidecar's
    ``EchoTime`` is in seconds: :func:`discmeasure.load` converts it).

    Examples
    --------
    >>> import numpy as np
    >>> s = Scan(np.zeros((4, 5, 6)), np.diag([0.5, 0.5, 4.0, 1.0]))
    >>> s.spacing
    (0.5, 0.5, 4.0)
    >>> s.orientation
    ('R', 'A', 'S')
    """

    def __init__(self, data, affine, *, echo_times_ms=None, meta: Mapping | None = None, phi: Mapping | None = None):
        arr = np.asanyarray(data)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise InputError(f"image data must be numeric, got dtype {arr.dtype}")
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.ndim not in (3, 4):
            raise InputError(
                f"image data must have 3 spatial axes (+1 volume axis), got {arr.ndim} axes of shape {arr.shape}"
            )
        if arr.size == 0:
            raise InputError(f"image data is empty (shape {arr.shape})")
        # a read-only view: the caller's array (3-D and 4-D inputs were stored as they are) keeps
        # its own flag; flagging a view never fails and never touches its base
        self._data = arr.view()
        self._data.flags.writeable = False
        self._affine = _check_affine(affine)
        self._affine.flags.writeable = False

        if echo_times_ms is not None:
            tes = tuple(float(t) for t in np.ravel(echo_times_ms))
            nvol = arr.shape[3] if arr.ndim == 4 else 1
            if len(tes) != nvol:
                raise InputError(f"{len(tes)} echo times given for {nvol} volume(s)")
            if not all(np.isfinite(t) and t >= 0 for t in tes):
                raise InputError(f"echo times must be finite and >= 0 ms, got {tes}")
            if len(tes) > 1:  # a multi-echo train (one short TE alone may be an ultra-short-TE image)
                check_echo_times_ms(tes)
            self._tes = tes
        else:
            self._tes = None

        m = dict(meta or {})
        p = dict(phi or {})
        for k in PHI_KEYS:
            if k in m:
                p[k] = m.pop(k)
        self._meta = MappingProxyType(m)
        self._phi = MappingProxyType(p)

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict:
        """Plain dicts for ``meta`` and ``phi`` (a ``mappingproxy`` cannot be pickled)."""
        state = dict(self.__dict__)
        state["_meta"] = dict(self._meta)
        state["_phi"] = dict(self._phi)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._meta = MappingProxyType(dict(state["_meta"]))
        self._phi = MappingProxyType(dict(state["_phi"]))
        for name in ("_data", "_affine"):
            arr = getattr(self, name).view()
            arr.flags.writeable = False
            setattr(self, name, arr)

    # ------------------------------------------------------------------ basic
    @property
    def data(self) -> np.ndarray:
        """The image array (read-only view)."""
        return self._data

    @property
    def affine(self) -> np.ndarray:
        """4x4 voxel -> world (RAS+ mm) transform (read-only)."""
        return self._affine

    @property
    def shape(self) -> tuple[int, int, int]:
        """Spatial shape (first three axes)."""
        return tuple(int(n) for n in self._data.shape[:3])

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def n_volumes(self) -> int:
        """Number of volumes along the last axis (1 for 3-D data)."""
        return int(self._data.shape[3]) if self._data.ndim == 4 else 1

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along each spatial array axis."""
        return tuple(float(v) for v in np.linalg.norm(self._affine[:3, :3], axis=0))

    @property
    def orientation(self) -> tuple[str, str, str]:
        """Closest anatomical direction of each array axis, e.g. ('P', 'S', 'R')."""
        import nibabel as nib

        return tuple(nib.aff2axcodes(self._affine))

    @property
    def direction(self) -> np.ndarray:
        """3x3 matrix of unit column vectors: world direction of each array axis."""
        m = self._affine[:3, :3]
        return m / np.linalg.norm(m, axis=0)

    @property
    def echo_times_ms(self) -> tuple[float, ...] | None:
        """Echo time of each volume (ms), or None."""
        return self._tes

    @property
    def meta(self) -> Mapping[str, Any]:
        """Acquisition metadata without patient-identifying fields (read-only mapping)."""
        return self._meta

    @property
    def phi(self) -> Mapping[str, Any]:
        """Patient-identifying fields (read-only). Never print or log these."""
        return self._phi

    def __repr__(self) -> str:
        desc = own_description(self._meta)
        sp = "x".join(f"{s:.3g}" for s in self.spacing)
        extra = f", echoes={len(self._tes)}" if self._tes else ""
        name = f" {desc!r}" if desc else ""
        return (
            f"<Scan{name} shape={self._data.shape} spacing={sp} mm "
            f"orientation={''.join(self.orientation)}{extra}>"
        )

    # -------------------------------------------------------------- derived
    def echo(self, i: int) -> "Scan":
        """Volume ``i`` (0-based) along the last axis as a 3-D Scan."""
        if self._data.ndim == 3:
            if i in (0, -1):
                return self
            raise IndexError(f"3-D scan has one volume, asked for {i}")
        vol = self._data[..., i]
        meta = dict(self._meta)
        if self._tes is not None:
            meta["echo_time_ms"] = self._tes[i]
        return Scan(vol, self._affine, meta=meta, phi=self._phi)

    def with_data(self, data, *, echo_times_ms=None, meta: Mapping | None = None) -> "Scan":
        """A new Scan on the same grid holding ``data`` (e.g. a map or labels)."""
        m = dict(self._meta) if meta is None else dict(meta)
        return Scan(data, self._affine, echo_times_ms=echo_times_ms, meta=m, phi=self._phi)

    # ------------------------------------------------------------ geometry
    def voxel_to_world(self, ijk) -> np.ndarray:
        """World (RAS+ mm) coordinates of voxel indices ``ijk`` (..., 3)."""
        ijk = np.asarray(ijk, dtype=float)
        return ijk @ self._affine[:3, :3].T + self._affine[:3, 3]

    def world_to_voxel(self, xyz) -> np.ndarray:
        """Continuous voxel indices of world points ``xyz`` (..., 3)."""
        inv = np.linalg.inv(self._affine)
        xyz = np.asarray(xyz, dtype=float)
        return xyz @ inv[:3, :3].T + inv[:3, 3]

    def world_coordinates(self) -> np.ndarray:
        """World coordinates of every voxel centre, shape ``shape + (3,)``."""
        idx = np.stack(np.meshgrid(*[np.arange(n) for n in self.shape], indexing="ij"), axis=-1)
        return self.voxel_to_world(idx)

    def axis_closest_to(self, world_axis: str) -> int:
        """Array axis most parallel to world axis 'x'/'R'/'L', 'y'/'A'/'P' or 'z'/'S'/'I'."""
        key = {"x": 0, "r": 0, "l": 0, "y": 1, "a": 1, "p": 1, "z": 2, "s": 2, "i": 2}[world_axis.lower()]
        return int(np.argmax(np.abs(self.direction[key, :])))

    # ---------------------------------------------------------------- NIfTI
    def to_nifti(self, *, dtype=None):
        """This scan as a :class:`nibabel.Nifti1Image` (sform and qform set, units mm/ms).

        Multi-volume data are written as 4-D; echo times are not part of the
        NIfTI header: use :meth:`bids_sidecar` (or :func:`discmeasure.io.save`)
        to keep them.
        """
        import nibabel as nib

        data = np.asarray(self._data)
        if dtype is not None:
            data = data.astype(dtype)
        elif data.dtype == bool:
            data = data.astype(np.uint8)
        elif data.dtype == np.float16:
            data = data.astype(np.float32)
        img = nib.Nifti1Image(data, np.array(self._affine))
        img.set_sform(np.array(self._affine), code=1)
        img.set_qform(np.array(self._affine), code=1)
        img.header.set_xyzt_units("mm", "msec")
        desc = str(own_description(self._meta) or "")[:79]
        img.header["descrip"] = desc.encode("ascii", "replace")
        return img

    def bids_sidecar(self) -> dict:
        """BIDS-style JSON sidecar (times in seconds), without patient-identifying fields.

        The scanner's free-text series description and protocol name are left out (they can hold
        a name: :func:`own_description`); the series number stays. A description discmeasure
        made (``"discmeasure t2_ms (epg)"``) is kept.
        """
        side: dict[str, Any] = {}
        desc = own_description(self._meta)
        if desc:
            side["SeriesDescription"] = desc
        mapping = {
            "modality": "Modality",
            "series_number": "SeriesNumber",
            "sequence_name": "SequenceName",
            "vendor": "Manufacturer",
            "model": "ManufacturersModelName",
            "field_strength_t": "MagneticFieldStrength",
            "flip_angle_deg": "FlipAngle",
            "refocusing_angle_deg": "RefocusingFlipAngle",
            "echo_train_length": "EchoTrainLength",
            "slice_thickness_mm": "SliceThickness",
            "spacing_between_slices_mm": "SpacingBetweenSlices",
            "series_uid": "SeriesInstanceUID",
            "study_uid": "StudyInstanceUID",
            "acquisition_date": "AcquisitionDate",
        }
        for k, bk in mapping.items():
            v = self._meta.get(k)
            if v is not None:
                side[bk] = v
        if self._meta.get("repetition_time_ms") is not None:
            side["RepetitionTime"] = float(self._meta["repetition_time_ms"]) / 1000.0
        if self._meta.get("echo_spacing_ms") is not None:
            side["EchoSpacing_ms"] = float(self._meta["echo_spacing_ms"])
        if self._tes is not None:
            tes_s = [t / 1000.0 for t in self._tes]
            side["EchoTime"] = tes_s if len(tes_s) > 1 else tes_s[0]
        elif self._meta.get("echo_time_ms") is not None:
            side["EchoTime"] = float(self._meta["echo_time_ms"]) / 1000.0
        return json.loads(json.dumps(side, default=str))

    @classmethod
    def from_nifti(cls, img, *, sidecar: Mapping | None = None, meta: Mapping | None = None) -> "Scan":
        """Scan from a nibabel image (+ optional BIDS sidecar dict, EchoTime in seconds)."""
        data = np.asanyarray(img.dataobj)
        affine = img.affine
        if data.ndim == 5 and data.shape[3] == 1:  # x y z 1 t
            data = data[:, :, :, 0, :]
        m = dict(meta or {})
        m.setdefault("source_format", "nifti")
        tes = None
        if sidecar:
            rev = {
                "SeriesDescription": "series_description",
                "SeriesNumber": "series_number",
                "ProtocolName": "protocol_name",
                "Manufacturer": "vendor",
                "ManufacturersModelName": "model",
                "MagneticFieldStrength": "field_strength_t",
                "FlipAngle": "flip_angle_deg",
                "RefocusingFlipAngle": "refocusing_angle_deg",
                "EchoTrainLength": "echo_train_length",
                "SliceThickness": "slice_thickness_mm",
                "SpacingBetweenSlices": "spacing_between_slices_mm",
                "SeriesInstanceUID": "series_uid",
                "StudyInstanceUID": "study_uid",
                "Modality": "modality",
                "AcquisitionDate": "acquisition_date",
            }
            for bk, k in rev.items():
                if bk in sidecar:
                    m[k] = sidecar[bk]
            if "RepetitionTime" in sidecar:
                m["repetition_time_ms"] = float(sidecar["RepetitionTime"]) * 1000.0
            if "EchoSpacing_ms" in sidecar:
                m["echo_spacing_ms"] = float(sidecar["EchoSpacing_ms"])
            te = sidecar.get("EchoTime")
            if te is not None:
                te_ms = [float(t) * 1000.0 for t in np.ravel(te)]
                nvol = data.shape[3] if data.ndim == 4 else 1
                if len(te_ms) == nvol and nvol > 1:
                    tes = te_ms
                elif len(te_ms) == 1:
                    m["echo_time_ms"] = te_ms[0]
        if data.ndim > 4:
            raise InputError(f"image has {data.ndim} axes; discmeasure reads 3-D or 4-D images")
        return cls(data, affine, echo_times_ms=tes, meta=m)

    def save(self, path: str | os.PathLike) -> None:
        """Write as NIfTI (``.nii``/``.nii.gz``) with a BIDS JSON sidecar, atomically."""
        from .io.write import save_nifti

        save_nifti(self, path)
