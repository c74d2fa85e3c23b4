"""De-identification of the DICOM SEG and SR (QA finding: site and person identifiers leaked).

By default (the pseudonymised mode) nothing site- or person-identifying of the source headers
may reach ``labels.seg.dcm`` or ``measurements.sr.dcm``, at the top level or in any nested
sequence (DICOM PS3.15 Annex E, Basic Application Level Confidentiality Profile: Station Name,
Institution Name / Address / Department, Device Serial Number, Study and Series Description,
Protocol Name, every person name, ...). The UIDs that let a viewer show the SEG and SR over their
source (Study / Series / SOP Instance and Frame of Reference UIDs) are kept, and so are the
study date and time (discmeasure keeps acquisition dates for longitudinal work).

The oracle is the written file itself: every element, nested ones included, read back with
pydicom, and the raw bytes of the file (with the kept UIDs blanked out, since a Siemens UID
embeds the scanner's serial number).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

import discmeasure as dm
from discmeasure.io.dicom_seg import read_source, to_dicom_seg, write_dicom_seg
from discmeasure.io.dicom_sr import write_dicom_sr, write_scan_seg_and_sr
from discmeasure.segmentation.core import Segmentation

hd = pytest.importorskip("highdicom")

#: identifying values planted in the synthetic source (top level); every one must vanish
TOP = {
    "StationName": "QASTATION77",
    "InstitutionName": "Secret General Hospital",
    "InstitutionAddress": "1 Hidden Road, Nowhere",
    "InstitutionalDepartmentName": "Department of Hidden Neurology",
    "DeviceSerialNumber": "SN998877",
    "SoftwareVersions": "secretOS 9.9",
    "StudyDescription": "PCK-Hiddenname^SECRETSTUDY",
    "SeriesDescription": "t2 SECRETSERIES",
    "ProtocolName": "SECRETPROTOCOL",
    "OperatorsName": "Operatorsur^Olgaxx",
    "PerformingPhysicianName": "Performsur^Paulxx",
    "ReferringPhysicianName": "Refersur^Ritaxx",
    "RequestingPhysician": "Requestsur^Rexxx",
    "PhysiciansOfRecord": "Recordsur^Robxx",
    "NameOfPhysiciansReadingStudy": "Readsur^Rudixx",
    "ConsultingPhysicianName": "Consultsur^Conxx",
    "PatientName": "Patientsur^Janexx",
    "PatientID": "PID4455667",
    "PatientBirthDate": "19230101",
    "PatientBirthName": "Birthsur^Bxx",
    "PatientMotherBirthName": "Mothersur^Mxx",
    "OtherPatientIDs": "OTHERPID9911",
    "OtherPatientNames": "Othersur^Oxx",
    "PatientAddress": "2 Patient Lane, Hometown",
    "PatientTelephoneNumbers": "5550001112",
    "PatientComments": "Patient comment SECRET",
    "AdditionalPatientHistory": "History SECRET",
    "AccessionNumber": "ACC778899",
    "StudyID": "STUDYID4242",
    "ImageComments": "Image comment SECRET",
    "ClinicalTrialSponsorName": "Sponsor SECRET",
    "ClinicalTrialProtocolID": "PROTOCOLID SECRET",
    "ClinicalTrialSiteName": "Trial Site SECRET",
    "ClinicalTrialSiteID": "SITEID SECRET",
    "ClinicalTrialSubjectID": "SUBJECTID SECRET",
}
#: identifying values planted in nested sequences of the source
NESTED = ("Nested Institution SECRET", "Nestedsur^Nedxx", "5559998887", "Procedure code SECRET",
          "Requested procedure SECRET", "NestStationSECR")
#: the private block's value (a Siemens CSA header can hold site names too)
PRIVATE = "Private station SECRET"
#: person attributes removed (Annex E: X), numbers that cannot be searched for as text
REMOVED = ("PatientSize", "PatientWeight")


def _plant(ds: Dataset) -> None:
    """Put the identifying attributes of :data:`TOP`, :data:`NESTED` and :data:`PRIVATE` into ``ds``."""
    for key, value in TOP.items():
        setattr(ds, key, value)
    ds.PatientSize = "1.87"
    ds.PatientWeight = "93.5"
    ident = Dataset()
    ident.InstitutionName = NESTED[0]
    ident.PersonTelephoneNumbers = NESTED[2]
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "X1", "99QA", NESTED[3]
    ident.PersonIdentificationCodeSequence = [code]
    ds.ReferringPhysicianIdentificationSequence = [ident]
    op = Dataset()
    op.InstitutionName = NESTED[0]
    op.PersonIdentificationCodeSequence = [code]
    ds.OperatorIdentificationSequence = [op]
    proc = Dataset()
    proc.CodeValue, proc.CodingSchemeDesignator, proc.CodeMeaning = "P1", "99QA", NESTED[3]
    ds.ProcedureCodeSequence = [proc]
    req = Dataset()
    req.RequestedProcedureDescription = NESTED[4]
    req.ScheduledPerformingPhysicianName = NESTED[1]
    req.ScheduledStationName = NESTED[5]
    ds.RequestAttributesSequence = [req]
    other = Dataset()
    other.PatientID = "OTHERPID9911"
    other.IssuerOfPatientID = "Nested Institution SECRET"
    ds.OtherPatientIDsSequence = [other]
    block = ds.private_block(0x0029, "QASECRET", create=True)
    block.add_new(0x10, "LO", PRIVATE)


def _secrets() -> list[str]:
    out = [*TOP.values(), *NESTED, PRIVATE]
    for v in TOP.values():  # each component of a person name on its own, too
        if "^" in v:
            out += [p for p in v.split("^") if p]
    return out


def _strings(ds: Dataset):
    """(keyword, text value) of every element of ``ds``, nested ones included (UIDs left out)."""
    for elem in ds.iterall():
        if elem.VR in ("SQ", "UI", "OB", "OW", "OF", "OD", "OL", "UN") or elem.value is None:
            continue
        values = elem.value if isinstance(elem.value, (list, MultiValue)) else [elem.value]
        for v in values:
            yield elem.keyword or str(elem.tag), str(v)


def _uids(ds: Dataset) -> set[str]:
    return {str(e.value) for e in ds.iterall() if e.VR == "UI" and e.value} | \
        {str(getattr(ds, "file_meta", Dataset()).get("MediaStorageSOPInstanceUID", ""))} - {""}


def assert_no_identifiers(path: Path, secrets) -> None:
    """No ``secrets`` in any element of the file at ``path`` (nested too) nor in its raw bytes
    outside the kept UIDs."""
    ds = pydicom.dcmread(path)
    secrets = [s for s in secrets if s]
    leaks = [(k, v, s) for k, v in _strings(ds) for s in secrets if s.lower() in v.lower()]
    assert not leaks, f"{path.name}: {leaks}"
    raw = path.read_bytes()
    for uid in sorted(_uids(ds), key=len, reverse=True):
        raw = raw.replace(uid.encode(), b"")
    found = [s for s in secrets if s.encode() in raw]
    assert not found, f"{path.name} bytes: {found}"
    for key in REMOVED:
        assert not ds.get(key), (path.name, key)
    assert not any(e.tag.is_private for e in ds.iterall()), path.name
    assert ds.PatientIdentityRemoved == "YES"


def _tampered_series(sample_scans, tmp_path) -> Path:
    """A copy of the sample T2-weighted series whose headers carry the identifiers to remove."""
    src = tmp_path / "t2w"
    shutil.copytree(sample_scans / "pre" / "T2W_SAG", src)
    for f in sorted(p for p in src.rglob("*") if p.is_file()):
        ds = pydicom.dcmread(f)
        _plant(ds)
        ds.save_as(f)
    return src


def test_seg_and_sr_of_the_api_hold_no_source_identifier(sample_scans, tmp_path):
    """The library's writers (``write_dicom_seg``, ``write_dicom_sr``, ``write_scan_seg_and_sr``):
    no planted identifier anywhere in SEG or SR; the references to the source are intact."""
    src = _tampered_series(sample_scans, tmp_path)
    scan = dm.load(src)
    seg = dm.segment(scan)
    source = read_source(src)
    table = pd.DataFrame({"level": ["L4-L5", "L5-S1"], "label": [123, 124], "bulge_mm": [2.5, 1.5],
                          "height_middle_mm": [9.25, 8.5], "t2_np_ms": [81.5, 90.0], "volume_mm3": [15000.0, 14000.0]})
    seg_file, sr_file = write_scan_seg_and_sr(seg, scan, src, table, tmp_path / "a" / "labels.seg.dcm")
    single = write_dicom_seg(seg, src, tmp_path / "b" / "one.seg.dcm", subject="sub-qa")
    sr_of_file = write_dicom_sr(table, single, tmp_path / "b" / "one.sr.dcm")
    for f in (seg_file, sr_file, single, sr_of_file):
        assert_no_identifiers(f, _secrets())
    # what a viewer needs to show them over the source is kept
    back = pydicom.dcmread(seg_file)
    assert back.StudyInstanceUID == source[0].StudyInstanceUID
    assert back.FrameOfReferenceUID == source[0].FrameOfReferenceUID
    assert back.ReferencedSeriesSequence[0].SeriesInstanceUID == source[0].SeriesInstanceUID
    assert {i.ReferencedSOPInstanceUID for i in back.ReferencedSeriesSequence[0].ReferencedInstanceSequence} <= \
        {d.SOPInstanceUID for d in source}
    assert back.StudyDate == source[0].StudyDate  # dates are kept (longitudinal work)
    assert back.SeriesDescription == "discmeasure labels" and back.Manufacturer == "discmeasure"
    sr = pydicom.dcmread(sr_file)
    assert sr.StudyInstanceUID == source[0].StudyInstanceUID and sr.SeriesDescription == "discmeasure measurements"
    assert hd.sr.srread(str(sr_file)).content.get_volumetric_roi_measurement_groups()  # still a TID 1500 report
    # the source files are untouched
    assert read_source(src)[0].StationName == TOP["StationName"]


def test_keep_identity_keeps_the_source_values(sample_scans, tmp_path):
    """``keep_identity=True`` (documented: the source's values, for filing in a PACS) is unchanged."""
    src = _tampered_series(sample_scans, tmp_path)
    scan = dm.load(src)
    seg = Segmentation(labels=np.where(np.asarray(dm.segment(scan).labels) > 0, 123, 0).astype(np.int16),
                       affine=np.array(scan.affine), method="auto")
    kept = pydicom.dcmread(write_dicom_seg(seg, src, tmp_path / "k.seg.dcm", keep_identity=True))
    assert str(kept.PatientID) == TOP["PatientID"] and kept.StudyDescription == TOP["StudyDescription"]
    assert kept.ContributingEquipmentSequence[0].StationName == TOP["StationName"]
    assert kept.get("PatientIdentityRemoved") != "YES"


def test_sr_of_an_older_pseudonymised_seg_is_cleaned(sample_scans, tmp_path):
    """A SEG marked Patient Identity Removed but still holding study and site identifiers (as
    written before this fix) gives an SR without them."""
    src = _tampered_series(sample_scans, tmp_path)
    scan = dm.load(src)
    seg = to_dicom_seg(dm.segment(scan), read_source(src), keep_identity=True)
    seg.PatientName, seg.PatientID, seg.PatientBirthDate = "sub-old^", "sub-old", ""
    seg.PatientIdentityRemoved = "YES"
    table = pd.DataFrame({"level": ["L4-L5"], "label": [123], "bulge_mm": [2.5]})
    out = write_dicom_sr(table, seg, tmp_path / "old.sr.dcm")
    assert_no_identifiers(out, _secrets())
    assert str(pydicom.dcmread(out).PatientID) == "sub-old"


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "discmeasure", *map(str, args)], capture_output=True, text=True,
                          timeout=600)


def test_cli_measure_dicom_seg_on_a_real_siemens_series(testdata, tmp_path):
    """The QA reproduction: the second echo of dcm_qa_pdt2 (Siemens VE11, real site headers) as
    its own series, a label map on its grid, ``measure --labels ... --dicom-seg``."""
    src = tmp_path / "in_e2"
    src.mkdir()
    for f in sorted((testdata / "dicom" / "dcm_qa_pdt2" / "In").rglob("*_e2.dcm")):
        shutil.copy(f, src / f.name)
    header = pydicom.dcmread(next(src.iterdir()), stop_before_pixels=True)
    keys = ("StudyDescription", "SeriesDescription", "ProtocolName", "InstitutionName", "InstitutionAddress",
            "StationName", "InstitutionalDepartmentName", "DeviceSerialNumber", "SoftwareVersions",
            "ReferringPhysicianName", "RequestingPhysician", "PerformingPhysicianName", "OperatorsName",
            "PatientBirthDate")
    secrets = [str(header.get(k)) for k in keys if header.get(k) and len(str(header.get(k))) >= 6]
    secrets += [p for k in keys if header.get(k) and "^" in str(header.get(k))
                for p in str(header.get(k)).split("^") if len(p) >= 4]
    assert {"RHRTGSIEMR01", "Department of Neurology", "166141", "PCK-Miskowiak^ALTIBRAIN"} <= set(secrets)
    scan = dm.load(src)
    labels = np.zeros(scan.shape[:3], np.int16)
    for value, (lo, hi) in {22: (8, 18), 123: (18, 21), 23: (21, 31), 124: (31, 34), 26: (34, 44)}.items():
        labels[20:44, lo:hi, 20:35] = value
    lab_file = tmp_path / "labels.nii.gz"
    dm.io.save(dm.Scan(labels, scan.affine), lab_file)
    res = _cli("measure", src, "--labels", lab_file, "--out", tmp_path / "out", "--dicom-seg")
    assert res.returncode == 0, res.stdout + res.stderr
    for name in ("labels.seg.dcm", "measurements.sr.dcm"):
        assert_no_identifiers(tmp_path / "out" / name, secrets)
    seg = pydicom.dcmread(tmp_path / "out" / "labels.seg.dcm")
    assert seg.StudyInstanceUID == header.StudyInstanceUID and seg.FrameOfReferenceUID == header.FrameOfReferenceUID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == header.SeriesInstanceUID
