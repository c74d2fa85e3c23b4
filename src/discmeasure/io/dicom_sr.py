"""DICOM Structured Report (TID 1500 Measurement Report) of a visit's per-level measurements, and import.

The per-level table of :func:`discmeasure.measure` is written as a Comprehensive 3D SR whose
content is a TID 1500 "Imaging Measurement Report": one TID 1411 "Volumetric ROI Measurements"
group per disc level, which

- references the level's disc segment in the visit's DICOM SEG (:mod:`discmeasure.io.dicom_seg`)
  and, through it, the T2-weighted series it was drawn on;
- names the level as its Tracking Identifier ("L4-L5") and its finding site with the same
  SNOMED CT code as the SEG segment (DICOM CID 7604, "L4/L5 disc" ...);
- holds one numeric measurement per measured column, in UCUM units (mm, mm3, ms, ratio).

So a registry reads the numbers together with the exact voxels they were measured on, in the
archive's own format, with any TID 1500 reader (highdicom, dcmqi, OHIF, 3D Slicer).

Concept names. Where DICOM has a code for the concept it is used (SCT 118565006 "Volume");
the others (bulge dimension, the three disc heights, DHI, AP length, the ROIs' T2 median and IQR,
the signal-intensity ratio) have none, so they are coded in the private coding scheme
``99DSCMSR`` (private schemes start with "99", DICOM PS3.16 section 8), with a short code value
(``BULGE``, ``HEIGHT-ANT``, ``T2-NP`` ...) and the definition of docs/methods.md as the meaning
(:data:`CONCEPTS` maps them to the columns of the measurement table). A measurement that is NaN (not measured, e.g. a withheld bulge) is left
out; the level's QC flags are not coded (they are in measurements.csv/.json).

Uncertainty. When the table carries the level's own SDs (``analyze(..., uncertainty=N)``:
``bulge_sd_mm``, ...; :mod:`discmeasure.uncertainty`), each of those measurements gets a TID 310
Measurement Properties item "+/-, range of measurement uncertainty" (SCT 371884006, DICOM CID 225)
holding the SD in the measurement's unit: a standard uncertainty (coverage factor 1; JCGM
100:2008, "Guide to the expression of uncertainty in measurement", section 2.3.1), not a 95 %
interval.

The patient and study modules are copied from the SEG, so they are pseudonymised the same way (the
default). A SEG marked Patient Identity Removed (one of discmeasure's, or of another program) is
de-identified again before it is copied (:func:`~discmeasure.io.dicom_seg.deidentified`, its
Patient's Name and ID kept): a SEG written before the study and site attributes were removed
(Study Description, Station Name, ...) gives a report without them. A SEG with the identity
(``keep_identity=True``) gives a report with it.

References
----------
DICOM PS3.16 TID 1500 (Measurement Report), TID 1411 (Volumetric ROI Measurements and
Qualitative Evaluations); PS3.3 A.35.13 (Comprehensive 3D SR IOD).

Bridge CP, Gorman C, Pieper S, et al. "Highdicom: a Python library for standardized encoding of
image annotations and machine learning model outputs in pathology and radiology." Journal of
Digital Imaging, August 2022 (highdicom, which builds the report here).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["PRIVATE_SCHEME", "CONCEPTS", "to_dicom_sr", "write_dicom_sr", "write_scan_seg_and_sr", "read_dicom_sr",
           "sr_path", "sr_path_beside"]

#: Coding Scheme Designator of the measurement concepts DICOM has no code for.
PRIVATE_SCHEME = "99DSCMSR"

#: measurement column -> (code value, scheme, meaning, UCUM unit). Private code values are at
#: most 16 characters (a Code Value, VR SH; longer ones go to Long Code Value, which readers
#: handle less well).
CONCEPTS = {
    "bulge_mm": ("BULGE", PRIVATE_SCHEME, "Posterior disc bulge dimension, maximum over the band", "mm"),
    "bulge_midsagittal_mm": ("BULGE-MIDSAG", PRIVATE_SCHEME, "Posterior disc bulge dimension, mid-sagittal", "mm"),
    "height_anterior_mm": ("HEIGHT-ANT", PRIVATE_SCHEME, "Disc height, anterior", "mm"),
    "height_middle_mm": ("HEIGHT-MID", PRIVATE_SCHEME, "Disc height, middle", "mm"),
    "height_posterior_mm": ("HEIGHT-POST", PRIVATE_SCHEME, "Disc height, posterior", "mm"),
    "dhi": ("DHI", PRIVATE_SCHEME, "Disc height index", "{ratio}"),
    "ap_length_mm": ("AP-LENGTH", PRIVATE_SCHEME, "Disc anteroposterior length", "mm"),
    "volume_mm3": ("118565006", "SCT", "Volume", "mm3"),
    "t2_np_ms": ("T2-NP", PRIVATE_SCHEME, "T2 median, nucleus pulposus ROI", "ms"),
    "t2_np_iqr_ms": ("T2-NP-IQR", PRIVATE_SCHEME, "T2 interquartile range, nucleus pulposus ROI", "ms"),
    "t2_af_anterior_ms": ("T2-AFA", PRIVATE_SCHEME, "T2 median, anterior annulus ROI", "ms"),
    "t2_af_anterior_iqr_ms": ("T2-AFA-IQR", PRIVATE_SCHEME, "T2 interquartile range, anterior annulus ROI", "ms"),
    "t2_af_posterior_ms": ("T2-AFP", PRIVATE_SCHEME, "T2 median, posterior annulus ROI", "ms"),
    "t2_af_posterior_iqr_ms": ("T2-AFP-IQR", PRIVATE_SCHEME, "T2 interquartile range, posterior annulus ROI", "ms"),
    "t2_disc_ms": ("T2-DISC", PRIVATE_SCHEME, "T2 median, whole disc", "ms"),
    "t2_disc_iqr_ms": ("T2-DISC-IQR", PRIVATE_SCHEME, "T2 interquartile range, whole disc", "ms"),
    "sir_np_csf": ("SIR-NP-CSF", PRIVATE_SCHEME, "Signal-intensity ratio, nucleus pulposus to CSF", "{ratio}"),
}

_UNIT_MEANING = {"mm": "millimeter", "mm3": "cubic millimeter", "ms": "millisecond", "{ratio}": "ratio"}

#: Default Series Number of the SR (next to the SEG's 9901).
SERIES_NUMBER = 9902


def sr_path(path) -> Path:
    """``path`` checked as a DICOM SR file to write (not a folder)."""
    from .dicom_seg import dicom_file_path

    return dicom_file_path(path, "measurements.sr.dcm")


def _segments(seg) -> dict:
    """discmeasure label value -> segment (item of the Segment Sequence) of a SEG written by
    :func:`~discmeasure.io.dicom_seg.to_dicom_seg`."""
    from .dicom_seg import label_value

    out = {}
    for item in seg.SegmentSequence:
        v = label_value(getattr(item, "SegmentLabel", None))
        if v is not None:
            out[v] = item
    return out


def to_dicom_sr(measurements, seg, *, series_number: int = SERIES_NUMBER,
                series_description: str = "discmeasure measurements"):
    """A TID 1500 measurement report (``highdicom.sr.Comprehensive3DSR``) of a visit's table.

    Parameters
    ----------
    measurements : pandas.DataFrame
        One row per disc level (:func:`discmeasure.measure`), with ``level`` and ``label``.
    seg : pydicom.Dataset
        The visit's DICOM SEG (:func:`~discmeasure.io.dicom_seg.to_dicom_seg`, or read back from
        its file): each level's group references its disc segment there; the patient and study
        modules are taken from it (de-identified again when it is marked Patient Identity Removed).

    Raises
    ------
    InputError
        When no level of the table has a segment in ``seg`` (a SEG of other labels).
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from .. import __version__
    from ..uncertainty import T2_UNCERTAIN_METRICS, UNCERTAIN_METRICS, sd_column

    segments = _segments(seg)
    series_uid = str(seg.ReferencedSeriesSequence[0].SeriesInstanceUID)
    algorithm = hd.sr.AlgorithmIdentification(name="discmeasure", version=str(__version__))
    groups = []
    for row in measurements.itertuples(index=False):
        segment = segments.get(int(row.label))
        if segment is None:
            continue
        ref = hd.sr.ReferencedSegment(sop_class_uid=seg.SOPClassUID, sop_instance_uid=seg.SOPInstanceUID,
                                      segment_number=int(segment.SegmentNumber),
                                      source_series=hd.sr.SourceSeriesForSegmentation(series_uid))
        # the finding site: the segment's own property type (SNOMED CT, CID 7604 for a disc)
        site = hd.sr.CodedConcept.from_dataset(segment.SegmentedPropertyTypeCodeSequence[0])
        items = []
        for col, (value, scheme, meaning, unit) in CONCEPTS.items():
            v = getattr(row, col, np.nan)
            if v is None or not np.isfinite(float(v)):
                continue
            unit_code = hd.sr.CodedConcept(unit, "UCUM", _UNIT_MEANING[unit])
            sd = getattr(row, sd_column(col), np.nan) if col in UNCERTAIN_METRICS + T2_UNCERTAIN_METRICS else np.nan
            properties = None
            if sd is not None and np.isfinite(float(sd)):
                # the level's SD over moved re-analyses: a standard uncertainty, in the measurement's unit
                properties = hd.sr.MeasurementProperties()
                properties.append(hd.sr.NumContentItem(
                    name=codes.SCT.RangeOfMeasurementUncertainty, value=float(sd), unit=unit_code,
                    relationship_type=hd.sr.RelationshipTypeValues.HAS_PROPERTIES))
            items.append(hd.sr.Measurement(
                name=hd.sr.CodedConcept(value, scheme, meaning),
                value=float(v),
                unit=unit_code,
                algorithm_id=algorithm,
                properties=properties,
            ))
        groups.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=str(row.level)),
            referenced_segment=ref,
            finding_type=codes.SCT.AnatomicalStructure,
            finding_sites=[hd.sr.FindingSite(site)],
            algorithm_id=algorithm,
            measurements=items or None,
        ))
    if not groups:
        raise InputError("no level of the measurement table has a disc segment in the SEG",
                         hint="write the SR with the SEG of the same segmentation")
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name="discmeasure", manufacturer_name="discmeasure", model_name=str(__version__)),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.cid100.MRIUnspecifiedBodyRegion,  # CID 100 has no spine MRI code
        imaging_measurements=groups,
    )
    from .dicom_seg import deidentified, new_instance

    evidence = seg
    if str(seg.get("PatientIdentityRemoved", "")).strip().upper() == "YES":
        evidence = deidentified(seg)  # the patient, study and equipment attributes the report copies
    return hd.sr.Comprehensive3DSR(evidence=[evidence], content=report, is_complete=True,
                                   **new_instance(series_number, series_description))


def write_dicom_sr(measurements, seg, path) -> Path:
    """Write :func:`to_dicom_sr` of ``measurements`` and the SEG (a dataset or its file) atomically."""
    import pydicom

    from .dicom_seg import save_dicom

    path = sr_path(path)
    if not hasattr(seg, "SOPInstanceUID"):
        seg = pydicom.dcmread(os.fspath(seg), stop_before_pixels=True)  # the report needs its header only
    return save_dicom(to_dicom_sr(measurements, seg), path)


def sr_path_beside(seg_file) -> Path:
    """Where the report of a SEG file goes when only the SEG's name was chosen: the same folder and
    stem, ``.sr.dcm`` (``pre.seg.dcm`` -> ``pre.sr.dcm``, ``pre.dcm`` -> ``pre.sr.dcm``)."""
    seg_file = Path(seg_file)
    name = seg_file.name
    for ending in (".seg.dcm", ".dcm"):
        if name.lower().endswith(ending):
            name = name[: -len(ending)]
            break
    return seg_file.with_name(f"{name}.sr.dcm")


def write_scan_seg_and_sr(segmentation, scan, source, measurements, seg_file, sr_file=None, *,
                          subject: str | None = None, keep_identity: bool = False) -> tuple[Path, Path]:
    """The labels as a DICOM SEG on ``scan``'s series (:func:`~discmeasure.io.dicom_seg.scan_seg`)
    and ``measurements`` as a TID 1500 report on its segments (:func:`to_dicom_sr`).

    Both are made in memory before either is written, so a failure (a scan not read from DICOM,
    a table with no level in the SEG) writes nothing; each file is then written atomically.
    ``sr_file`` defaults to :func:`sr_path_beside` ``seg_file``. Returns the two paths.
    """
    from .dicom_seg import save_dicom, scan_seg, seg_path

    seg_file = seg_path(seg_file)
    sr_file = sr_path(sr_file if sr_file is not None else sr_path_beside(seg_file))
    seg = scan_seg(segmentation, scan, source, subject=subject, keep_identity=keep_identity)
    sr = to_dicom_sr(measurements, seg)
    return save_dicom(seg, seg_file), save_dicom(sr, sr_file)


def read_dicom_sr(path):
    """The per-level measurements of a TID 1500 report as a table (one row per group).

    Columns: ``level`` (the Tracking Identifier), ``segment_number`` and ``seg_sop_instance_uid``
    (the referenced segment, or None), and one column per measurement concept of :data:`CONCEPTS`
    found (private and standard codes alike), NaN where a group lacks it; for a measurement with
    a "+/-, range of measurement uncertainty" property (SCT 371884006) also its SD column
    (``bulge_sd_mm``, ...; :func:`discmeasure.uncertainty.sd_column`).

    Raises
    ------
    InputError
        When the file is not a DICOM SR holding a TID 1500 measurement report.
    """
    import highdicom as hd
    import pandas as pd

    from ..uncertainty import sd_column

    path = Path(path)
    by_code = {(v, s): col for col, (v, s, _, _) in CONCEPTS.items()}
    try:
        sr = hd.sr.srread(os.fspath(path))
        groups = sr.content.get_volumetric_roi_measurement_groups()
    except Exception as exc:  # noqa: BLE001 -- any reader failure: not a report we can read
        raise InputError(f"not a DICOM TID 1500 measurement report ({type(exc).__name__})", path=path,
                         hint="give a measurements.sr.dcm written by discmeasure or another TID 1500 writer") from None
    rows = []
    for g in groups:
        row = {"level": g.tracking_identifier, "segment_number": None, "seg_sop_instance_uid": None}
        ref = g.referenced_segment
        if ref is not None:
            row["segment_number"] = int(ref.referenced_segment_numbers[0])
            row["seg_sop_instance_uid"] = str(ref.referenced_sop_instance_uid)
        for m in g.get_measurements():
            col = by_code.get((m.name.value, m.name.scheme_designator))
            if col is not None:
                row[col] = float(m.value)
                sd = _uncertainty_of(m)
                if sd is not None:
                    row[sd_column(col)] = sd
        rows.append(row)
    return pd.DataFrame(rows)


def _uncertainty_of(measurement) -> float | None:
    """The value of a measurement's "+/-, range of measurement uncertainty" property, if it has one."""
    # highdicom's Measurement is a template: a sequence holding the NUM content item
    for num in [measurement] if hasattr(measurement, "ContentSequence") else list(measurement):
        for item in getattr(num, "ContentSequence", []):
            name = item.ConceptNameCodeSequence[0]
            if (name.CodeValue, name.CodingSchemeDesignator) == ("371884006", "SCT") and "MeasuredValueSequence" in item:
                return float(item.MeasuredValueSequence[0].NumericValue)
    return None
