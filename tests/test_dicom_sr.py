"""DICOM SR export of the measurements (``discmeasure.io.dicom_sr``, TID 1500).

The oracle is highdicom's own TID 1500 reader (``srread`` and the report's volumetric
measurement groups), and pydicom for the referenced SEG: every number of measurements.csv must
come back under its level, referencing that level's disc segment of the visit's SEG, whose
code the group's finding site repeats. The CLI run that writes both is in tests/test_dicom_seg.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pydicom
import pytest

import discmeasure as dm
from discmeasure.errors import InputError, OutputError
from discmeasure.io.dicom_seg import write_dicom_seg
from discmeasure.io.dicom_sr import (CONCEPTS, read_dicom_sr, sr_path_beside, to_dicom_sr, write_dicom_sr,
                                    write_scan_seg_and_sr)

from discmeasure.uncertainty import sd_column

hd = pytest.importorskip("highdicom")


def check_report_matches_table(sr_file, seg_file, csv_file, subject):
    """The report at ``sr_file`` holds every finite number of the table at ``csv_file``, per level,
    each group referencing its disc's segment in ``seg_file``; the patient is ``subject``."""
    table = pd.read_csv(csv_file)
    got = read_dicom_sr(sr_file).set_index("level")
    seg = pydicom.dcmread(seg_file)
    segments = {int(s.SegmentNumber): s for s in seg.SegmentSequence}
    assert list(got.index) == list(table["level"])
    for row in table.itertuples(index=False):
        g = got.loc[row.level]
        s = segments[int(g.segment_number)]
        assert s.SegmentLabel == f"{row.level} disc ({row.label})"
        assert g.seg_sop_instance_uid == seg.SOPInstanceUID
        for col in CONCEPTS:
            want = getattr(row, col)
            if np.isfinite(want):
                # measurements.csv holds 4 decimals, the report the full value
                assert abs(g[col] - want) <= 0.5e-4 + 1e-9, (row.level, col, g[col], want)
            else:
                assert col not in got.columns or not np.isfinite(g[col]), (row.level, col)
            sd = sd_column(col)
            if sd in table.columns and np.isfinite(getattr(row, sd)) and np.isfinite(want):
                # the level's own uncertainty (--uncertainty N) as the measurement's property
                assert abs(g[sd] - getattr(row, sd)) <= 0.5e-4 + 1e-9, (row.level, sd, g[sd], getattr(row, sd))
    assert got["bulge_mm"].notna().any() and got["t2_np_ms"].notna().any()
    # the same SNOMED CT code for the level as the SEG segment's; the patient as in the SEG
    sr = hd.sr.srread(str(sr_file))
    for grp in sr.content.get_volumetric_roi_measurement_groups():
        seg_code = segments[int(got.loc[grp.tracking_identifier].segment_number)].SegmentedPropertyTypeCodeSequence[0]
        site = grp.finding_sites[0]
        assert (site.value.value, site.value.scheme_designator) == (seg_code.CodeValue, seg_code.CodingSchemeDesignator)
    ds = pydicom.dcmread(sr_file)
    assert str(ds.PatientID) == subject == str(seg.PatientID) and not ds.get("PatientBirthDate")
    assert ds.StudyInstanceUID == seg.StudyInstanceUID and ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"


def test_report_of_a_table_and_its_errors(sample_scans, tmp_path):
    """A table written by hand: a NaN is left out, a level without a segment in the SEG is left
    out, a table with no such level and an output folder are refused, and a non-report file
    is refused with one line."""
    src = sample_scans / "pre" / "T2W_SAG"
    scan = dm.load(src)
    seg = dm.segment(scan)
    seg_file = write_dicom_seg(seg, src, tmp_path / "l.seg.dcm")
    table = pd.DataFrame({"level": ["L4-L5", "L5-S1", "T10-T11"], "label": [123, 124, 109],
                          "bulge_mm": [2.5, np.nan, 1.0], "height_middle_mm": [9.25, 8.5, 7.0],
                          "t2_np_ms": [81.5, 90.0, 70.0], "volume_mm3": [15000.0, 14000.0, 9000.0]})
    out = write_dicom_sr(table, seg_file, tmp_path / "m.sr.dcm")
    back = read_dicom_sr(out).set_index("level")
    assert list(back.index) == ["L4-L5", "L5-S1"]  # T10-T11 has no segment in this SEG
    assert back.loc["L4-L5", "bulge_mm"] == 2.5 and np.isnan(back.loc["L5-S1", "bulge_mm"])
    assert back.loc["L5-S1", "height_middle_mm"] == 8.5 and back.loc["L4-L5", "t2_np_ms"] == 81.5
    assert back.loc["L5-S1", "volume_mm3"] == 14000.0
    # volume is coded with SNOMED CT, the disc-specific concepts privately
    sr = hd.sr.srread(str(out))
    names = {(m.name.value, m.name.scheme_designator) for g in sr.content.get_volumetric_roi_measurement_groups()
             for m in g.get_measurements()}
    assert ("118565006", "SCT") in names and ("BULGE", "99DSCMSR") in names
    assert "bulge_sd_mm" not in back.columns  # no uncertainty in this table, none in the report
    # a level's own uncertainty: a "+/-, range of measurement uncertainty" property (SCT 371884006,
    # DICOM CID 225) of its measurement, the SD in the measurement's unit; NaN SDs are left out
    table["bulge_sd_mm"] = [0.25, 0.3, 0.1]
    table["height_middle_sd_mm"] = [np.nan, 0.05, 0.1]
    table["t2_np_sd_ms"] = [1.5, np.nan, 2.0]  # with a T2 fit: the ROI T2's SD, in ms
    back = read_dicom_sr(write_dicom_sr(table, seg_file, tmp_path / "u.sr.dcm")).set_index("level")
    assert back.loc["L4-L5", "bulge_sd_mm"] == 0.25 and np.isnan(back.loc["L5-S1", "bulge_sd_mm"])  # no bulge there
    assert np.isnan(back.loc["L4-L5", "height_middle_sd_mm"]) and back.loc["L5-S1", "height_middle_sd_mm"] == 0.05
    assert back.loc["L4-L5", "t2_np_sd_ms"] == 1.5 and np.isnan(back.loc["L5-S1", "t2_np_sd_ms"])
    grp = hd.sr.srread(str(tmp_path / "u.sr.dcm")).content.get_volumetric_roi_measurement_groups()[0]
    bulge = next(m for m in grp.get_measurements() if m.name.value == "BULGE")
    (prop,) = [i for i in bulge[0].ContentSequence if i.RelationshipType == "HAS PROPERTIES"]
    code = prop.ConceptNameCodeSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator, prop.ValueType) == ("371884006", "SCT", "NUM")
    assert prop.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue == "mm"
    t2 = next(m for m in grp.get_measurements() if m.name.value == "T2-NP")
    (prop,) = [i for i in t2[0].ContentSequence if i.RelationshipType == "HAS PROPERTIES"]
    assert prop.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue == "ms"
    with pytest.raises(InputError, match="no level of the measurement table"):
        to_dicom_sr(table.iloc[2:], pydicom.dcmread(seg_file))
    with pytest.raises(OutputError, match="folder"):
        write_dicom_sr(table, seg_file, tmp_path)
    with pytest.raises(InputError, match="not a DICOM TID 1500"):
        read_dicom_sr(seg_file)


def test_seg_and_sr_together(sample_scans, tmp_path):
    """``write_scan_seg_and_sr`` (napari's save, the CLI's visit files): the report beside the SEG
    references its segments; when the report cannot be made (no level of the table in the SEG),
    or the scan has no DICOM series, neither file is written."""
    assert sr_path_beside(tmp_path / "pre.seg.dcm") == tmp_path / "pre.sr.dcm"
    assert sr_path_beside(tmp_path / "pre.DCM") == tmp_path / "pre.sr.dcm"
    src = sample_scans / "pre" / "T2W_SAG"
    visit = dm.analyze(sample_scans / "pre")  # with the multi-echo series' T2
    scan, seg, table = visit.scan, visit.segmentation, visit.measurements
    seg_file, sr_file = write_scan_seg_and_sr(seg, scan, src, table, tmp_path / "a" / "pre.seg.dcm")
    assert sr_file == tmp_path / "a" / "pre.sr.dcm"
    table.to_csv(tmp_path / "m.csv", index=False, float_format="%.4f")
    check_report_matches_table(sr_file, seg_file, tmp_path / "m.csv", dm.pipeline.default_subject(scan))
    other = table.assign(level="T10-T11", label=109)
    with pytest.raises(InputError, match="no level of the measurement table"):
        write_scan_seg_and_sr(seg, scan, src, other, tmp_path / "b" / "x.seg.dcm")
    nifti_scan = dm.Scan(np.asarray(scan.data), scan.affine)  # not read from DICOM
    with pytest.raises(InputError, match="not read from DICOM"):
        write_scan_seg_and_sr(seg, nifti_scan, src, table, tmp_path / "b" / "y.seg.dcm")
    assert not (tmp_path / "b").exists()
