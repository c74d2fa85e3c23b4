"""Provenance identifies the libraries, the images measured and the choices made."""

from __future__ import annotations

import numpy as np

import discmeasure as dm
from discmeasure import Scan
from discmeasure.pipeline import hash_inputs


def test_provenance_names_libraries_images_and_choices(sample_scans):
    """The versions of the libraries the numbers depend on (only numpy's was recorded), a hash of
    each image measured, also for a Scan given in memory (``inputs`` is empty then), and the
    seeds and series choices."""
    scan = dm.load(sample_scans / "pre" / "T2W_SAG")
    auto = dm.analyze(scan)
    sw = auto.provenance["software"]
    for name in ("numpy", "scipy", "scikit-image", "SimpleITK", "pydicom", "nibabel", "pandas"):
        assert sw.get(name), name
    digest = auto.provenance["series"]["t2w"]["data_sha256"]
    assert auto.provenance["inputs"] == [] and len(digest) == 64
    d = np.array(scan.data)
    d[0, 0, 0] += 1
    other = dm.analyze(Scan(d, scan.affine, meta=scan.meta), uncertainty=0)
    assert other.provenance["series"]["t2w"]["data_sha256"] != digest
    seeds = {lv: [float(auto.measurements.set_index("level").loc[lv, f"bulge_point_{a}_mm"]) for a in "xyz"]
             for lv in ("L4-L5", "L5-S1")}
    seeded = dm.analyze(scan, seeds=seeds)
    rec = seeded.provenance["parameters"]["seeds"]
    assert set(rec) == {"L4-L5", "L5-S1"} and np.allclose(rec["L4-L5"], seeds["L4-L5"], atol=1e-3)
    folder = dm.analyze(sample_scans / "pre", t2w_series="3")
    assert folder.provenance["parameters"]["t2w_series"] == "3"


def test_hash_inputs_says_when_it_hashed_part_of_a_folder(tmp_path):
    """A folder of more files than ``max_files`` was hashed in part but reported as whole."""
    for i in range(3):
        (tmp_path / f"f{i}").write_bytes(bytes([i]))
    part = hash_inputs(tmp_path, max_files=2)
    assert part["truncated"] is True and part["n_files_hashed"] == 2 and part["n_files"] == 3
    assert "truncated" not in hash_inputs(tmp_path)
