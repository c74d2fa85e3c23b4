"""Free-text series descriptions stay out of outputs (technologists sometimes append a name)."""

from __future__ import annotations

import json

import numpy as np

import discmeasure as dm
from discmeasure import Scan

NAME = "JANEDOE"


def _named(scan: Scan) -> Scan:
    meta = dict(scan.meta)
    meta["series_description"] = f"T2 TSE SAG {NAME}"
    meta["protocol_name"] = f"t2_tse_sag {NAME}"
    return Scan(np.asarray(scan.data), scan.affine, meta=meta)


def test_descriptions_not_written_to_sidecars_headers_reprs(tmp_path):
    """The NIfTI header, the BIDS sidecar and the repr leave the scanner's SeriesDescription and
    ProtocolName out (the DICOM SEG/SR already did, PS3.15 Annex E); discmeasure's own
    descriptions (a T2 map's) stay. They used to be copied everywhere."""
    s = _named(Scan(np.ones((4, 5, 6), np.float32), np.eye(4), meta={"series_number": 3}))
    side = s.bids_sidecar()
    assert NAME not in json.dumps(side) and side["SeriesNumber"] == 3
    assert NAME not in repr(s)
    assert NAME.encode() not in bytes(s.to_nifti().header["descrip"])
    dm.save(s, tmp_path / "x.nii.gz")
    assert NAME not in (tmp_path / "x.json").read_text()
    own = Scan(np.ones((4, 5, 6), np.float32), np.eye(4), meta={"series_description": "discmeasure t2_ms (epg)"})
    assert own.bids_sidecar()["SeriesDescription"] == "discmeasure t2_ms (epg)"


def test_descriptions_not_in_provenance(sample_scans):
    """``analyze``'s provenance (measurements.json, report.html) names the series by number and
    UID, not by its free-text description."""
    scan = _named(dm.load(sample_scans / "pre" / "T2W_SAG"))
    res = dm.analyze(scan)
    assert NAME not in json.dumps(res.to_json(), default=str) and NAME not in repr(res)
    assert res.provenance["series"]["t2w"]["series_number"] == scan.meta["series_number"]
