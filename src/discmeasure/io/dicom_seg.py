"""DICOM Segmentation (SEG) export of a label map, on the frames of its source series, and import.

A label map in the discmeasure convention (vertebral bodies 20-26, discs 100 + the
vertebra above, canal 61) is written as a binary DICOM SEG instance (one segment per
structure) that references the T2-weighted series it was drawn on, so that PACS viewers
and archives (and OHIF, 3D Slicer, highdicom) show it over that series. Each source frame's
pixel centres are placed in world space from its own Image Position / Orientation and Pixel
Spacing, and the label at that point (nearest voxel) is taken, so the SEG frames coincide
with the source frames whatever the array order of the label map.

Segments are coded with SNOMED CT: property category "Anatomical structure", property type
the vertebra (DICOM CID 7603, "Vertebra": L1 vertebra ...; S1 as "Sacrum"; an L6 as "Vertebra"),
the intervertebral disc by level (CID 7604, "Intervertebral Disc": L4/L5 disc ...; a transitional
L5-L6 or L6-S1 disc, which has no code there, as "Structure of vertebral column" with its level in
the segment label) or the spinal canal. Segment labels carry the level and the discmeasure label
value, e.g. "L4-L5 disc (123)". A SEG is read back (:func:`read_dicom_seg`) through the same
codes, so SEGs of other programs that use them import as ours.

The patient and study modules of a SEG, and its Contributing Equipment item for the acquisition
equipment, are copied from its source images. By default they are de-identified first
(:func:`deidentified`), like every other discmeasure output: Patient's Name and ID = the
pseudonymous subject id; the attributes of the DICOM PS3.15 Annex E Basic Application Level
Confidentiality Profile that are not needed to show the SEG over its source are emptied (birth
date, sex, accession number, study id, referring physician) or removed (age, size, weight, other
IDs and names, addresses, every other person name, institution name / address / department,
station name, device serial number, software versions, study / series description, protocol
name, comments, clinical trial attributes, private attributes ...), at the top level and in every
nested sequence; Patient Identity Removed = YES. Kept: the UIDs (study, series, instances, frame
of reference: the references to the source) and the study date and time (the "Retain UIDs" and
"Retain Longitudinal Temporal Information with Full Dates" options of Annex E; discmeasure keeps
acquisition dates for longitudinal work). ``keep_identity=True`` keeps the source's values, which a
PACS needs to file the SEG with the patient's study.

References
----------
DICOM PS3.3 A.51, Segmentation IOD; PS3.16 CID 7603 and CID 7604.

Bridge CP, Gorman C, Pieper S, Doyle SW, Lennerz JK, Kalpathy-Cramer J, Clunie DA, Fedorov AY,
Herrmann MD. "Highdicom: a Python library for standardized encoding of image annotations and
machine learning model outputs in pathology and radiology." Journal of Digital Imaging, August
2022 (highdicom, which builds the instance here).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np

from .. import labels as lab
from ..errors import InputError, OutputError
from .dicom import _is_seg

__all__ = ["segment_code", "read_source", "labels_on_frames", "grid_mismatch", "check_source", "to_dicom_seg",
           "dicom_file_path", "seg_path", "write_dicom_seg", "deidentified", "scan_seg", "save_dicom", "write_scan_seg", "require_dicom", "is_dicom_seg", "read_dicom_seg", "label_value"]

#: Default Series Number of the SEG (a derived series, numbered apart from the scanner's).
SERIES_NUMBER = 9901

# DICOM PS3.15 Annex E (Table E.1-1) attributes taken out of the copies of the source headers when
# the identity is not kept (:func:`deidentified`), wherever they are (nested sequences too).
# Emptied: the SEG / SR IODs have them as Type 2 (present, may be empty).
_EMPTIED = frozenset({
    "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID", "ReferringPhysicianName", "ContentCreatorName",
})
# Removed (Annex E X, or D/Z/U of text that has no place in a derived object).
_REMOVED = frozenset({
    # patient
    "PatientID", "PatientBirthTime", "PatientAge", "PatientSize", "PatientWeight", "OtherPatientIDs",
    "OtherPatientIDsSequence", "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName", "PatientAddress",
    "PatientTelephoneNumbers", "PatientComments", "AdditionalPatientHistory", "MedicalAlerts", "Allergies",
    "EthnicGroup", "Occupation", "MilitaryRank", "BranchOfService", "CountryOfResidence", "RegionOfResidence",
    "PatientReligiousPreference", "SmokingStatus", "PregnancyStatus", "LastMenstrualDate", "PatientState",
    "SpecialNeeds", "ResponsiblePerson", "ResponsibleOrganization", "PatientInsurancePlanCodeSequence",
    "PatientPrimaryLanguageCodeSequence", "MedicalRecordLocator", "IssuerOfPatientID",
    "IssuerOfPatientIDQualifiersSequence", "ReferencedPatientSequence", "ReferencedPatientPhotoSequence",
    "PatientSexNeutered", "CurrentPatientLocation", "PatientInstitutionResidence", "PatientTransportArrangements",
    "PreMedication", "InsurancePlanIdentification", "PersonAddress", "PersonTelephoneNumbers",
    "PersonTelecomInformation", "PatientTelecomInformation",
    # study, visit and request
    "StudyDescription", "ReferringPhysicianAddress", "ReferringPhysicianTelephoneNumbers",
    "ReferringPhysicianIdentificationSequence", "ConsultingPhysicianName", "ConsultingPhysicianIdentificationSequence",
    "PhysiciansOfRecord", "PhysiciansOfRecordIdentificationSequence", "NameOfPhysiciansReadingStudy",
    "PhysiciansReadingStudyIdentificationSequence", "RequestingPhysician", "RequestingService",
    "RequestingServiceCodeSequence", "AdmittingDiagnosesDescription", "AdmittingDiagnosesCodeSequence",
    "AdmissionID", "IssuerOfAdmissionIDSequence", "ServiceEpisodeID", "ServiceEpisodeDescription",
    "IssuerOfServiceEpisodeIDSequence", "ReasonForStudy", "ReasonForTheRequestedProcedure", "ReasonForVisit",
    "ReasonForVisitCodeSequence", "VisitComments", "StudyComments", "RequestedProcedureDescription",
    "RequestedProcedureID", "RequestedProcedureLocation", "RequestedContrastAgent", "RequestAttributesSequence",
    "ProcedureCodeSequence", "ReferencedStudySequence", "ReferencedPerformedProcedureStepSequence",
    "IssuerOfAccessionNumberSequence", "StudyIDIssuer", "PlacerOrderNumberImagingServiceRequest",
    "FillerOrderNumberImagingServiceRequest", "OrderEnteredBy", "OrderEntererLocation", "OrderCallbackPhoneNumber",
    "NamesOfIntendedRecipientsOfResults", "ImagingServiceRequestComments", "RequestedProcedureComments",
    "InterpretationRecorder", "InterpretationTranscriber", "InterpretationText", "InterpretationAuthor",
    "InterpretationApproverSequence", "DistributionName", "DistributionAddress",
    # series, acquisition and image
    "SeriesDescription", "ProtocolName", "OperatorsName", "OperatorIdentificationSequence",
    "PerformingPhysicianName", "PerformingPhysicianIdentificationSequence", "PerformedProcedureStepDescription",
    "PerformedProcedureStepID", "PerformedStationName", "PerformedLocation", "PerformedStationAETitle",
    "CommentsOnThePerformedProcedureStep", "ScheduledStationName", "ScheduledStationAETitle",
    "ScheduledPerformingPhysicianName", "ScheduledPerformingPhysicianIdentificationSequence",
    "ScheduledProcedureStepDescription", "ScheduledProcedureStepLocation", "ScheduledProcedureStepID",
    "ScheduledStudyLocation", "ScheduledStudyLocationAETitle", "AcquisitionComments", "ImageComments",
    "FrameComments", "DerivationDescription", "ContrastBolusAgent", "AcquisitionDeviceProcessingDescription",
    "AcquisitionProtocolDescription", "IdentifyingComments", "TextComments", "TextString", "TopicSubject",
    "TopicAuthor", "TopicKeywords", "TopicTitle", "AuthorObserverSequence", "ParticipantSequence",
    "VerifyingObserverName", "VerifyingObserverSequence", "VerifyingObserverIdentificationCodeSequence",
    "PersonName", "PersonIdentificationCodeSequence", "HumanPerformerName", "HumanPerformerOrganization",
    "ModifiedAttributesSequence", "OriginalAttributesSequence", "DigitalSignaturesSequence",
    "DataSetTrailingPadding",
    # equipment and site
    "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "InstitutionCodeSequence",
    "InstitutionalDepartmentTypeCodeSequence", "StationName", "DeviceSerialNumber", "SoftwareVersions",
    "DeviceDescription", "DeviceLabel", "DetectorID", "GantryID", "PlateID", "CassetteID", "NetworkID",
    "StorageMediaFileSetID", "TimezoneOffsetFromUTC",
    # clinical trial (subject, study and series modules)
    "ClinicalTrialSponsorName", "ClinicalTrialProtocolID", "ClinicalTrialProtocolName", "ClinicalTrialSiteID",
    "ClinicalTrialSiteName", "ClinicalTrialSubjectID", "ClinicalTrialSubjectReadingID", "ClinicalTrialTimePointID",
    "ClinicalTrialTimePointDescription", "ClinicalTrialCoordinatingCenterName",
    "ClinicalTrialProtocolEthicsCommitteeName", "ClinicalTrialProtocolEthicsCommitteeApprovalNumber",
    "ClinicalTrialSeriesID", "ClinicalTrialSeriesDescription", "ConsentForClinicalTrialUseSequence",
})

#: De-identification Method (LO, at most 64 characters) of a de-identified SEG or SR.
DEIDENTIFICATION_METHOD = "discmeasure: pseudonym; PS3.15 Annex E; UIDs and dates kept"


def segment_code(label: int, *, l6: bool = False):
    """(segment label text, SNOMED CT property type) of a discmeasure label value.

    ``l6``: the map holds an L6 (25), so disc 124 is L5-L6, not L5-S1.

    Raises
    ------
    ValueError
        For a value that is not a vertebral body, disc or canal label of the convention.
    """
    from pydicom.sr.codedict import codes

    label = int(label)
    if label == lab.CANAL:
        return "spinal canal", codes.SCT.SpinalCanalStructure
    if lab.is_disc(label):
        name = lab.disc_level_name(label, l6=l6)
        key = name.replace("-", "") + "Disc"  # "L4-L5" -> L4L5Disc (CID 7604)
        try:
            return f"{name} disc", getattr(codes.SCT, key)
        except AttributeError:  # a transitional level (L5-L6, L6-S1): no code of its own in CID 7604
            return f"{name} disc", codes.SCT.StructureOfVertebralColumn
    if lab.is_vertebra(label):
        name = lab.vertebra_name(label)
        if name == "S1":
            return "S1 (sacrum)", codes.SCT.Sacrum
        try:
            return name, getattr(codes.SCT, f"{name}Vertebra")  # CID 7603
        except AttributeError:
            return name, codes.SCT.Vertebra
    raise ValueError(f"label {label} is not a vertebral body, disc or canal label")


def read_source(source, *, series_uid: str | None = None) -> list:
    """Headers (no pixel data) of the DICOM images of one series under ``source``.

    Parameters
    ----------
    source : path
        A DICOM file, or a folder searched recursively (non-DICOM files are skipped).
    series_uid : str, optional
        The Series Instance UID to keep (e.g. ``scan.meta["series_uid"]``); required when the
        folder holds several series.

    Returns
    -------
    list of pydicom.Dataset
        Sorted by Instance Number.
    """
    from .dicom import _candidate_files, _is_image, _read

    source = Path(source)
    if not source.exists():
        raise InputError("no such file or folder", path=source, hint="give the DICOM series the labels were drawn on")
    found, series = [], set()
    for f in _candidate_files(source):
        try:
            ds = _read(f, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 -- not a DICOM file: skipped, as by the loader
            continue
        if "SOPInstanceUID" not in ds or "SeriesInstanceUID" not in ds or not _is_image(ds):
            continue  # not an image (a SEG saved beside the series, a report, ...)
        series.add(str(ds.SeriesInstanceUID))
        if series_uid is None or str(ds.SeriesInstanceUID) == str(series_uid):
            found.append(ds)
    if not found:
        what = "no DICOM images" if not series else "no image of the scan's series"
        raise InputError(f"{what} found for the DICOM SEG", path=source,
                         hint="give the DICOM series (or study folder) the T2-weighted scan was read from")
    if series_uid is None and len(series) > 1:
        raise InputError(f"{len(series)} series found; the DICOM SEG references one", path=source,
                         hint="give the series' own folder, or its Series Instance UID")
    return sorted(found, key=lambda d: int(getattr(d, "InstanceNumber", 0) or 0))


def _frame_geometry(datasets) -> list[tuple]:
    """(rows, columns, image position, row direction, column direction, (row spacing, column
    spacing)) of every frame of ``datasets`` (LPS mm), read by the loader's own frame parser
    (classic images and the frames of enhanced multi-frame ones)."""
    from .dicom import _frames_of

    out = []
    for ds in datasets:
        for f in _frames_of(ds, None):
            if f.tile is not None:
                raise InputError("the source is a Siemens mosaic (many slices in one image)",
                                 hint="a DICOM SEG needs the series with one image per slice")
            if f.ipp is None or f.iop is None or f.spacing is None:
                raise InputError("a source frame has no position, orientation or pixel spacing",
                                 hint="the DICOM SEG needs each source frame's geometry")
            out.append((f.rows, f.cols, f.ipp, f.iop[:3], f.iop[3:], f.spacing))
    return out


def _sample(labels: np.ndarray, affine: np.ndarray, geometry) -> np.ndarray:
    labels = np.asarray(labels)
    inv = np.linalg.inv(np.asarray(affine, float))
    out = []
    for rows, cols, ipp, xdir, ydir, (dr, dc) in geometry:
        r, c = np.mgrid[0:rows, 0:cols]
        lps = ipp + (c[..., None] * dc) * xdir + (r[..., None] * dr) * ydir
        ras = lps * np.array([-1.0, -1.0, 1.0])
        ijk = np.rint(ras @ inv[:3, :3].T + inv[:3, 3]).astype(np.int64)
        ok = np.all((ijk >= 0) & (ijk < labels.shape[:3]), axis=-1)
        f = np.zeros((rows, cols), labels.dtype)
        f[ok] = labels[ijk[ok, 0], ijk[ok, 1], ijk[ok, 2]]
        out.append(f)
    return np.stack(out)


#: largest distance (in voxels of the label map, along each of its axes) of a source pixel's centre from
#: the nearest voxel centre of the labels for the source to count as on the labels' grid (at 0.5 the
#: nearest voxel is ambiguous; the loader accepts slice positions off their line by 0.05 mm + 1 % of
#: the slice step, up to 0.13 of a 0.7 mm pixel)
GRID_TOLERANCE_VOXELS = 0.3


def grid_mismatch(shape, affine: np.ndarray, geometry) -> str | None:
    """Why the source frames (``geometry``, :func:`_frame_geometry`) are not on the voxel grid of a
    label map of ``shape`` and ``affine``, or None when every source pixel centre lies within
    :data:`GRID_TOLERANCE_VOXELS` of a voxel centre of the map and inside it (the labels were made
    on the source series, or resampled onto its grid; a finer label grid that holds every source
    pixel centre counts too)."""
    affine = np.asarray(affine, float)
    inv = np.linalg.inv(affine)
    shape = np.asarray(tuple(shape)[:3])
    flip = np.array([-1.0, -1.0, 1.0])  # LPS -> RAS
    worst, outside = 0.0, False
    for rows, cols, ipp, xdir, ydir, (dr, dc) in geometry:
        o = inv[:3, :3] @ (np.asarray(ipp, float) * flip) + inv[:3, 3]
        sc = inv[:3, :3] @ (dc * np.asarray(xdir, float) * flip)  # one column, in label voxels
        sr = inv[:3, :3] @ (dr * np.asarray(ydir, float) * flip)  # one row
        off = (np.abs(o - np.rint(o)) + (cols - 1) * np.abs(sc - np.rint(sc))
               + (rows - 1) * np.abs(sr - np.rint(sr)))  # bound over the frame's pixels, per axis
        worst = max(worst, float(np.max(off)))
        for r, c in ((0, 0), (0, cols - 1), (rows - 1, 0), (rows - 1, cols - 1)):
            ijk = np.rint(o + c * sc + r * sr)
            outside |= bool(np.any(ijk < 0) or np.any(ijk > shape - 1))
        if worst > GRID_TOLERANCE_VOXELS:
            return "the source's pixels are not on the labels' voxel grid"
    if outside:
        return "the source's frames reach beyond the labels' grid"
    return None


def _identity(obj) -> dict:
    """The series, study and frame of reference UIDs known of ``obj``: a Scan (its ``meta``), a
    mapping, or a Segmentation (its ``source``, what :func:`discmeasure.segment` recorded of its scan)."""
    if obj is None:
        return {}
    if hasattr(obj, "labels") and hasattr(obj, "affine"):  # a Segmentation
        return _identity(getattr(obj, "source", None))
    meta = getattr(obj, "meta", obj)
    if not hasattr(meta, "get"):
        return {}
    return {k: str(meta.get(k)) for k in ("series_uid", "study_uid", "frame_of_reference_uid") if meta.get(k)}


def check_source(segmentation, datasets, *, scan=None, geometry=None) -> None:
    """InputError (one line) when the series ``datasets`` is not where ``segmentation`` was made:
    another frame of reference, study or series than the one recorded for the labels (``scan``, the
    Scan they were made on, or the Segmentation's own ``source`` record), or frames off the labels'
    voxel grid (:func:`grid_mismatch`). A SEG filed on another series than its labels' shows them
    shifted, in another visit's frame of reference, without a word."""
    first = datasets[0]
    src = {"series_uid": str(first.get("SeriesInstanceUID", "") or ""),
           "study_uid": str(first.get("StudyInstanceUID", "") or ""),
           "frame_of_reference_uid": str(first.get("FrameOfReferenceUID", "") or "")}
    known = {**_identity(segmentation), **_identity(scan)}
    hint = ("give the series the labels were made on (or resample them onto this series' grid); "
            "allow_other_source=True writes them anyway")
    for key, what in (("frame_of_reference_uid", "frame of reference (patient position)"), ("study_uid", "study"),
                      ("series_uid", "series")):
        if known.get(key) and src[key] and known[key] != src[key]:
            raise InputError(f"the labels were made on another {what} than the source series'", hint=hint)
    why = grid_mismatch(np.shape(segmentation.labels), segmentation.affine,
                        geometry if geometry is not None else _frame_geometry(datasets))
    if why:
        raise InputError(f"{why}: the labels were not made on this series", hint=hint)


def labels_on_frames(labels: np.ndarray, affine: np.ndarray, datasets) -> np.ndarray:
    """The label map on the pixels of every frame of ``datasets`` (n_frames, rows, columns).

    The world point of pixel (r, c) is ``IPP + c * dc * row_dir + r * dr * col_dir`` (DICOM
    PS3.3 C.7.6.2.1.1, LPS), turned to RAS+ and into ``labels``' voxel indices through the
    inverse of ``affine``; the nearest voxel's label is taken (0 outside the map).
    """
    return _sample(labels, affine, _frame_geometry(datasets))


def _shared_geometry(ds):
    """A copy of a multi-frame header whose pixel measures and plane orientation, when given per
    frame but equal in every frame (Siemens XA enhanced MR), are also in the shared functional
    group, where highdicom reads them; other headers are returned as they are."""
    if "PerFrameFunctionalGroupsSequence" not in ds or not ds.get("SharedFunctionalGroupsSequence"):
        return ds
    d = copy.deepcopy(ds)
    shared = d.SharedFunctionalGroupsSequence[0]
    for name, key in (("PixelMeasuresSequence", "PixelSpacing"), ("PlaneOrientationSequence", "ImageOrientationPatient")):
        if name in shared:
            continue
        per = [f.get(name) for f in d.PerFrameFunctionalGroupsSequence]
        if any(not p for p in per):
            continue
        vals = np.array([np.asarray(p[0].get(key), float) for p in per])
        if not np.allclose(vals, vals[0], atol=1e-6):
            raise InputError(f"the multi-frame image's frames differ in {key}",
                             hint="a DICOM SEG of frames with different pixel grids is not supported")
        shared[name] = copy.deepcopy(d.PerFrameFunctionalGroupsSequence[0][name])
    return d


def _strip(ds) -> None:
    """Empty or remove, in place, the Annex E attributes of ``ds`` and of every dataset nested in
    it (:data:`_EMPTIED`, :data:`_REMOVED`, every person name, every private attribute)."""
    for elem in list(ds):
        key = elem.keyword
        if elem.tag.is_private or key in _REMOVED or (elem.VR == "PN" and key not in _EMPTIED):
            del ds[elem.tag]
        elif key in _EMPTIED:
            elem.value = [] if elem.VR == "SQ" else ""
        elif elem.VR == "SQ":
            for item in elem.value or []:
                _strip(item)


def deidentified(ds, subject: str | None = None):
    """A de-identified copy of the DICOM header ``ds`` (pixel data left out): what the SEG and SR
    copy from their source when the identity is not kept (see the module's docstring).

    Patient's Name and ID become ``subject`` (``"<subject>^"`` and ``subject``); with ``subject``
    None they stay as they are in ``ds`` (a SEG already pseudonymised, as the SR's evidence). The
    source's UIDs and study date and time are kept.
    """
    from pydicom.dataset import Dataset

    pixels = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
    if not any(k in ds for k in pixels):
        d = copy.deepcopy(ds)
    else:  # element by element: a SEG's pixel data is not copied
        d = Dataset()
        for elem in ds:
            if elem.keyword not in pixels:
                d.add(copy.deepcopy(elem))
        if hasattr(ds, "file_meta"):
            d.file_meta = copy.deepcopy(ds.file_meta)
    name, pid = ds.get("PatientName"), ds.get("PatientID")
    _strip(d)
    if subject is not None:
        name, pid = f"{subject}^", subject  # one name component (family), marked as such
    d.PatientName = "" if name is None else name
    d.PatientID = "" if pid is None else pid
    d.PatientIdentityRemoved = "YES"
    d.DeidentificationMethod = DEIDENTIFICATION_METHOD
    return d


def to_dicom_seg(segmentation, datasets, *, subject: str | None = None, keep_identity: bool = False,
                 series_number: int = SERIES_NUMBER, series_description: str = "discmeasure labels",
                 algorithm_type: str | None = None, scan=None, allow_other_source: bool = False):
    """A binary DICOM SEG (``highdicom.seg.Segmentation``) of a discmeasure segmentation.

    Parameters
    ----------
    segmentation : Segmentation
        Labels and affine (discmeasure convention), e.g. from :func:`discmeasure.segment`.
    datasets : sequence of pydicom.Dataset
        The source series' headers (:func:`read_source`).
    subject : str, optional
        Pseudonymous subject id written as Patient's Name and ID (default: derived from the
        Study Instance UID, as :func:`discmeasure.analyze` names subjects).
    keep_identity : bool
        Copy the source's patient and study attributes as they are (for filing in a PACS), instead
        of their de-identified copies (:func:`deidentified`).
    series_number : int
        Series Number of the SEG.
    algorithm_type : {"AUTOMATIC", "SEMIAUTOMATIC", "MANUAL"}, optional
        Segment Algorithm Type. Default from ``segmentation.method``: "auto" AUTOMATIC, "seeded"
        SEMIAUTOMATIC, imported labels ("labels:...") MANUAL (give it when they came from a
        program such as SPINEPS).
    scan : Scan, optional
        The scan the labels were made on (e.g. ``result.scan``): a source of another series, study
        or frame of reference than its own is refused (:func:`check_source`).
    allow_other_source : bool
        Write the SEG even when the source is not where the labels were made (another frame of
        reference, study or series, or frames off the labels' voxel grid): each source pixel then
        takes the label at its world position, which in another session is other anatomy.

    Returns
    -------
    highdicom.seg.Segmentation

    Raises
    ------
    InputError
        The source is not where the labels were made (see ``allow_other_source``), holds several
        images per slice position, or its frames hold no label of the convention.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from .. import __version__
    from ..pipeline import pseudonym

    datasets = list(datasets)
    geometry = _frame_geometry(datasets)
    pos = np.round([g[2] for g in geometry], 3)
    n_at = len(pos) / max(len(np.unique(pos, axis=0)), 1)
    if n_at > 1:
        raise InputError(f"the series holds {n_at:.3g} images per slice position (echoes or repetitions); "
                         "a DICOM SEG references one image per position",
                         hint="give the single-echo T2-weighted series the labels were drawn on")
    frames = _sample(segmentation.labels, segmentation.affine, geometry)
    values = [int(v) for v in np.unique(frames) if v != 0]
    known = []
    for v in values:
        try:
            known.append((v, *segment_code(v, l6=25 in values)))
        except ValueError:
            continue  # a value outside the convention (e.g. an unconverted import) is not exported
    if not known:
        raise InputError("the segmentation has no vertebral body, disc or canal label on the source frames",
                         hint="check that the labels were drawn on this series")
    if not allow_other_source:
        check_source(segmentation, datasets, scan=scan, geometry=geometry)
    pixel = np.zeros(frames.shape, np.uint16 if len(known) > 255 else np.uint8)
    algorithm = hd.AlgorithmIdentificationSequence(
        name="discmeasure", version=__version__, family=codes.cid7162.ArtificialIntelligence
    )
    method = str(getattr(segmentation, "method", "") or "")
    kind = algorithm_type or {"auto": "AUTOMATIC", "seeded": "SEMIAUTOMATIC"}.get(method, "MANUAL")
    descriptions = []
    for n, (v, text, code) in enumerate(known, start=1):
        pixel[frames == v] = n
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=n,
            segment_label=f"{text} ({v})",
            segmented_property_category=codes.SCT.AnatomicalStructure,
            segmented_property_type=code,
            algorithm_type=kind,
            algorithm_identification=None if kind == "MANUAL" else algorithm,
            tracking_id=f"discmeasure label {v}",
            tracking_uid=hd.UID(),
        ))
    datasets = [_shared_geometry(d) for d in datasets]
    if not keep_identity:
        subject = subject or pseudonym(str(getattr(datasets[0], "StudyInstanceUID", "")) or None)
        datasets = [deidentified(d, subject) for d in datasets]
    seg = hd.seg.Segmentation(
        source_images=datasets,
        pixel_array=pixel,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        **new_instance(series_number, series_description),
        manufacturer_model_name="discmeasure",
        software_versions=str(__version__),
        device_serial_number="0",
        omit_empty_frames=True,
    )
    return seg


def new_instance(series_number: int, series_description: str) -> dict:
    """The identity of a new derived instance that discmeasure writes (its own series, new UIDs):
    the keyword arguments highdicom's SEG and SR constructors share."""
    import highdicom as hd

    return dict(series_instance_uid=hd.UID(), series_number=int(series_number), sop_instance_uid=hd.UID(),
                instance_number=1, manufacturer="discmeasure", series_description=series_description)


def dicom_file_path(path, example: str = "labels.seg.dcm") -> Path:
    """``path`` checked as a DICOM file to write (not a folder; ``example`` names one in the hint)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError("output is a folder", path=path, hint=f"give a file name, e.g. -o {example}")
    return path


def seg_path(path) -> Path:
    """``path`` checked as a DICOM SEG file to write (not a folder); :func:`write_dicom_seg` checks
    it, and the CLI before its work, as :func:`~discmeasure.io.write.nifti_path` for NIfTI."""
    return dicom_file_path(path, "labels.seg.dcm")


def write_dicom_seg(segmentation, source, path, *, series_uid: str | None = None, subject: str | None = None,
                    keep_identity: bool = False, scan=None, allow_other_source: bool = False) -> Path:
    """Write ``segmentation`` as a DICOM SEG of the series under ``source`` (atomically).

    ``series_uid`` picks the series in a study folder (default: the segmentation's scan's, when
    only one series is there). The source must be the series the labels were made on, or one on
    their voxel grid: a series whose pixels are not on the labels' grid, or of another frame of
    reference, study or series than ``scan`` (the Scan the labels were made on, e.g.
    ``result.scan``; give it to have the visit checked too: two sessions can share a grid) is
    refused with an InputError before anything is written, unless ``allow_other_source=True``.
    See :func:`to_dicom_seg` for the other parameters.
    """
    path = seg_path(path)
    seg = to_dicom_seg(segmentation, read_source(source, series_uid=series_uid), subject=subject,
                       keep_identity=keep_identity, scan=scan, allow_other_source=allow_other_source)
    return save_dicom(seg, path)


def require_dicom(scan, path=None) -> None:
    """Refuse, with one line, a scan that was not read from DICOM: a DICOM SEG needs its series."""
    if scan.meta.get("source_format") != "dicom":
        raise InputError("the scan was not read from DICOM: a DICOM SEG needs its series' frames", path=path,
                         hint="write the labels as NIfTI (.nii.gz) instead, or leave out --dicom-seg")


def scan_seg(segmentation, scan, source, *, subject: str | None = None, keep_identity: bool = False):
    """:func:`to_dicom_seg` of labels drawn on ``scan``, which was read from DICOM under ``source``:
    on its own series, the subject by default the one :func:`discmeasure.analyze` names
    (:func:`~discmeasure.pipeline.default_subject`). A scan not read from DICOM is refused."""
    from ..pipeline import default_subject

    require_dicom(scan, source)
    return to_dicom_seg(segmentation, read_source(source, series_uid=scan.meta.get("series_uid")),
                        subject=subject or default_subject(scan), keep_identity=keep_identity, scan=scan)


def save_dicom(ds, path: Path) -> Path:
    """Save a DICOM dataset as a Part 10 file, atomically (its folder made if needed)."""
    from ..atomic import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        ds.save_as(os.fspath(tmp), enforce_file_format=True)
    return path


def write_scan_seg(segmentation, scan, source, path, *, subject: str | None = None, keep_identity: bool = False) -> Path:
    """:func:`scan_seg` written to ``path`` (atomically)."""
    path = seg_path(path)
    return save_dicom(scan_seg(segmentation, scan, source, subject=subject, keep_identity=keep_identity), path)


def label_value(segment_label) -> int | None:
    """The discmeasure label value a segment label written by :func:`to_dicom_seg` ends with
    (``"L4-L5 disc (123)"`` -> 123), None for another text."""
    import re

    m = re.search(r"\((\d+)\)\s*$", str(segment_label or ""))
    return int(m.group(1)) if m else None


def _label_of_code() -> dict[str, int]:
    """SNOMED CT code value -> discmeasure label: the inverse of :func:`segment_code` over every
    vertebra and disc level the convention names, plus cerebrospinal fluid and the spinal cord
    (the canal's content, as other tools label it) as canal."""
    from pydicom.sr.codedict import codes

    out: dict[str, int] = {}
    for v in range(1, lab.SACRUM + 1):
        try:
            _, code = segment_code(v)
        except ValueError:
            continue
        if code.value not in (codes.SCT.Vertebra.value, codes.SCT.StructureOfVertebralColumn.value):
            out.setdefault(code.value, v)
        if v < lab.SACRUM:
            _, dcode = segment_code(lab.disc_label(v))
            if dcode.value != codes.SCT.StructureOfVertebralColumn.value:
                out.setdefault(dcode.value, lab.disc_label(v))
    out[codes.SCT.SpinalCanalStructure.value] = lab.CANAL
    out[codes.SCT.CerebrospinalFluid.value] = lab.CANAL
    out[codes.SCT.SpinalCord.value] = lab.CANAL
    return out


def is_dicom_seg(path) -> bool:
    """True when ``path`` is a DICOM Segmentation instance: a DICOM Part 10 file ("DICM" after its
    128-byte preamble; any other file, a NIfTI say, is not read further) of the SEG SOP class."""
    import pydicom

    p = Path(path)
    if not p.is_file():
        return False
    try:
        with open(p, "rb") as fh:
            if fh.read(132)[128:] != b"DICM":
                return False
        ds = pydicom.dcmread(p, stop_before_pixels=True)
    except Exception:  # noqa: BLE001 -- unreadable: not a SEG
        return False
    return _is_seg(ds)


def read_dicom_seg(path):
    """A DICOM SEG as a discmeasure label map (:class:`~discmeasure.Scan`, RAS+ affine).

    Segments are mapped by their Segmented Property Type code (SNOMED CT; vertebrae CID 7603,
    discs CID 7604, spinal canal, cerebrospinal fluid and spinal cord as canal), not by their
    text, so SEGs written by other programs (3D Slicer, OHIF, a PACS) import as well as ours.
    The discmeasure label value in the segment label (``"L4-L5 disc (123)"``) is used for a
    segment whose code is "Structure of vertebral column" (a transitional L5-L6 or L6-S1 disc)
    or "Vertebra" (an L6). Segments with other codes are left out; where segments overlap, the
    later one wins.

    Raises
    ------
    InputError
        When the file is not a DICOM SEG, or none of its segments is a vertebra, disc or canal.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from ..scan import Scan

    # generic codes under which our own segment labels carry the value: a transitional disc, an L6
    generic = (codes.SCT.StructureOfVertebralColumn.value, codes.SCT.Vertebra.value)
    path = Path(path)
    if not is_dicom_seg(path):
        raise InputError("is not a DICOM Segmentation (SEG) instance", path=path,
                         hint="give a DICOM SEG file, or a NIfTI label map")
    seg = hd.seg.segread(path)
    by_code = _label_of_code()
    value_of: dict[int, int] = {}
    for s in seg.SegmentSequence:
        code = s.SegmentedPropertyTypeCodeSequence[0]
        v = by_code.get(str(code.CodeValue)) if str(code.CodingSchemeDesignator) in ("SCT", "SRT") else None
        own = label_value(s.get("SegmentLabel"))
        if v is None and own is not None and str(code.CodeValue) in generic:
            v = own  # our own L5-L6 / L6-S1 disc or L6, coded generically
        if v is not None:
            value_of[int(s.SegmentNumber)] = v
    if not value_of:
        raise InputError("no segment of the DICOM SEG is a vertebra, disc or spinal canal (by its SNOMED CT code)",
                         path=path, hint="label the segments with CID 7603 / 7604 codes, or import a NIfTI label map")
    vol = seg.get_volume(combine_segments=True, skip_overlap_checks=True, segment_numbers=sorted(value_of))
    arr = np.asarray(vol.array)
    out = np.zeros(arr.shape, np.int16)
    for n, v in value_of.items():
        out[arr == n] = v
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(vol.affine, float)  # LPS -> RAS
    return Scan(out, affine, meta={"series_description": "DICOM SEG labels"})
