"""QA findings 3, 4, 7, 13 and 15 (docs QA, /tmp/qa_docs/findings.md): each test failed on the code before.

3. ``demo`` and napari's Open Sample found sample_scans/ only beside an editable install.
4. Usage errors (missing/unknown option, a value that is not a number) were a multi-line panel, not
   one ``error:`` line; ``--help`` showed ``<bool>`` after flags that take no value.
7. Every input without a DICOM UID (NIfTI, MHA, NRRD) was ``sub-anonymous``.
13. ``t2map --overwrite`` with another method left the earlier epg run's b1 map beside the new maps;
    its non-NIfTI error suggested segment's ``-o labels.nii.gz``.
15. A bad ``--t2-method`` failed only after loading and segmenting (or passed unnoticed without a
    multi-echo series); ``check_uncertainty("four")`` raised a bare ValueError.
"""

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import discmeasure
import discmeasure as dm
from discmeasure.errors import DiscmeasureError, InputError

EXE = [sys.executable, "-m", "discmeasure"]
ROOT = Path(__file__).resolve().parents[1]
ENV_VAR = "DISCMEASURE_SAMPLE_SCANS"


def run(*args, cwd=None, env=None, timeout=600):
    return subprocess.run(EXE + [str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env=env)


def one_line_error(r, *words):
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr[-1500:])
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    assert "Traceback" not in r.stderr and "╭" not in r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def fake_samples(folder: Path) -> Path:
    """A sample_scans folder made of links to the real studies (a copy without copying 9 MB)."""
    folder.mkdir(parents=True)
    for name in ("pre", "post"):
        (folder / name).symlink_to(ROOT / "sample_scans" / name, target_is_directory=True)
    (folder / "truth.json").symlink_to(ROOT / "sample_scans" / "truth.json")
    return folder


def regular_install(monkeypatch, tmp_path):
    """discmeasure as if installed into a site-packages (no sample_scans two folders up)."""
    fake = tmp_path / "venv" / "lib" / "python3.11" / "site-packages" / "discmeasure" / "__init__.py"
    monkeypatch.setattr(discmeasure, "__file__", str(fake))


# -- finding 4: usage errors are one error: line; flags show no value placeholder ---------------------------------------


@pytest.mark.parametrize("args, word", [
    (("measure", "{pre}"), "--out"),                                    # a required option left out
    (("measure", "{pre}", "--out", "{out}", "--foo"), "--foo"),         # an unknown option
    (("measure", "{pre}", "--out", "{out}", "--band-mm", "abc"), "--band-mm"),  # not a number
    (("pair", "{pre}", "{pre}", "--out", "{out}", "--workers", "2"), "--workers"),  # batch's option
    (("t2map", "{pre}"), "--out"),
    (("nosuchcommand",), "nosuchcommand"),
])
def test_usage_errors_are_one_error_line(tmp_path, sample_scans, args, word):
    out = tmp_path / "out"
    args = [a.format(pre=sample_scans / "pre", out=out) for a in args]
    r = run(*args)
    line = one_line_error(r, word)
    assert "--help" in line  # where to look
    assert r.stdout == ""
    assert not out.exists()


def test_help_shows_no_value_placeholder_after_flags():
    for cmd in ([], ["measure"], ["pair"], ["batch"], ["t2map"], ["segment"]):
        r = run(*cmd, "--help")
        assert r.returncode == 0, r.stderr
        assert "<bool>" not in r.stdout, (cmd, r.stdout)
        assert "--help" in r.stdout
    r = run("measure", "--help")
    flat = " ".join(r.stdout.split())
    # the flag is followed by its help text, options with a value keep their placeholder
    assert re.search(r"--dicom-seg [│ ]*Also write", flat), flat
    assert "<path>" in flat and "--uncertainty" in flat and re.search(r"--uncertainty [│ ]*N ", flat), flat
    r = run("t2map", "--help")
    assert re.search(r"--overwrite [│ ]*Replace", " ".join(r.stdout.split())), r.stdout


def test_bare_command_and_version_still_work():
    r = run()
    assert "Usage: discmeasure" in r.stdout and "error:" not in r.stderr
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("discmeasure "), r


# -- finding 3: the sample studies are found after a regular install --------------------------------------------------


def test_sample_root_honours_the_environment_variable(tmp_path, monkeypatch):
    from discmeasure.cli.demo import sample_root

    mine = fake_samples(tmp_path / "my samples")
    monkeypatch.setenv(ENV_VAR, str(mine))
    assert sample_root() == mine
    regular_install(monkeypatch, tmp_path)
    assert sample_root() == mine


def test_sample_root_in_the_current_folder_after_a_regular_install(tmp_path, monkeypatch):
    from discmeasure.cli.demo import sample_root

    monkeypatch.delenv(ENV_VAR, raising=False)
    assert sample_root().resolve() == (ROOT / "sample_scans").resolve()  # the editable install, as before
    checkout = tmp_path / "checkout"
    fake_samples(checkout / "sample_scans")
    regular_install(monkeypatch, tmp_path)
    monkeypatch.chdir(checkout)
    assert sample_root().resolve() == (checkout / "sample_scans").resolve()


def _demo_as_installed(tmp_path, cwd, env_value=None):
    """``discmeasure demo`` in a fresh process, discmeasure seen as installed into a site-packages."""
    fake = tmp_path / "venv" / "lib" / "python3.11" / "site-packages" / "discmeasure" / "__init__.py"
    code = ("import sys, discmeasure; discmeasure.__file__ = sys.argv[1]; from discmeasure.cli import main; "
            "sys.exit(main(['demo', '--out', sys.argv[2]]))")
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    if env_value is not None:
        env[ENV_VAR] = str(env_value)
    return subprocess.run([sys.executable, "-c", code, str(fake), str(tmp_path / "demo_out")], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=300)


def test_demo_without_samples_says_what_to_do(tmp_path):
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    line = one_line_error(_demo_as_installed(tmp_path, empty), "sample studies", ENV_VAR, "make_sample_scans.py",
                          "source checkout")
    assert str(empty / "sample_scans") in line  # where it looked
    # a variable naming a folder without the studies: named in the error
    one_line_error(_demo_as_installed(tmp_path, empty, env_value=empty), ENV_VAR, str(empty))
    assert not (tmp_path / "demo_out").exists()


# -- finding 7: inputs without a DICOM UID get a pseudonym from their content -----------------------------------------


@pytest.fixture(scope="module")
def nifti_visits(tmp_path_factory, sample_scans):
    """The sample pre and post T2-weighted series as plain NIfTI (no sidecar: no UID), the pre one
    under two names and both compressions."""
    from discmeasure.pipeline import load_anatomy

    d = tmp_path_factory.mktemp("nifti_visits")
    out = {}
    for name in ("pre", "post"):
        s = load_anatomy(sample_scans / name)
        img = nib.Nifti1Image(np.asarray(s.data, np.float32), s.affine)
        out[name] = d / f"DOE_JANE_{name}.nii.gz"
        nib.save(img, out[name])
        if name == "pre":
            out["pre_copy"] = d / "renamed.nii"
            nib.save(img, out["pre_copy"])
    return out


def test_default_subject_of_nifti_inputs_is_made_from_their_content(nifti_visits):
    from discmeasure.pipeline import default_subject

    ids = {k: default_subject(dm.load(p)) for k, p in nifti_visits.items()}
    assert all(re.fullmatch(r"sub-[0-9a-f]{8}", v) for v in ids.values()), ids
    assert ids["pre"] != ids["post"]          # two scans (patients): two ids
    assert ids["pre"] == ids["pre_copy"]      # the same scan, another name and compression: the same id
    assert all("doe" not in v.lower() and "jane" not in v.lower() for v in ids.values())
    res = dm.analyze(nifti_visits["post"])  # analyze gives that id to the report
    assert res.subject == ids["post"]


def test_default_subject_of_dicom_inputs_unchanged(sample_scans):
    import pydicom

    from discmeasure.pipeline import default_subject, load_anatomy

    first = sorted((sample_scans / "pre" / "T2W_SAG").iterdir())[0]
    uid = pydicom.dcmread(first, stop_before_pixels=True).StudyInstanceUID
    assert default_subject(load_anatomy(sample_scans / "pre")) == "sub-" + hashlib.sha256(uid.encode()).hexdigest()[:8]


# -- finding 15: --t2-method and uncertainty checked first, as input errors -------------------------------------------


def _no_loading(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("loaded the input before checking the options")

    import discmeasure.io

    monkeypatch.setattr(discmeasure.io, "load", boom)
    monkeypatch.setattr(discmeasure.io, "load_study", boom)


def test_analyze_checks_t2_method_before_any_work(monkeypatch, sample_scans, nifti_visits):
    _no_loading(monkeypatch)
    for src in (sample_scans / "pre", nifti_visits["pre"]):  # with and without a multi-echo series
        with pytest.raises(InputError) as e:
            dm.analyze(src, t2_method="foo")
        msg = str(e.value)
        assert "--t2-method / t2_method=" in msg and "epg, mono, loglinear" in msg and "\n" not in msg, msg


def test_check_uncertainty_not_a_number_is_an_input_error(monkeypatch, sample_scans):
    from discmeasure.uncertainty import check_uncertainty

    for bad in ("four", None, 2.5):
        with pytest.raises(DiscmeasureError) as e:
            check_uncertainty(bad)
        assert isinstance(e.value, InputError)
        msg = str(e.value)
        assert "uncertainty / --uncertainty" in msg and "give 2 to 8, or 0 for none" in msg and "\n" not in msg
    assert check_uncertainty(4) == 4 and check_uncertainty(0) == 0 and check_uncertainty("3") == 3
    _no_loading(monkeypatch)
    with pytest.raises(InputError, match="--uncertainty"):
        dm.analyze(sample_scans / "pre", uncertainty="four")


@pytest.mark.parametrize("cmd", ["measure", "pair"])
def test_cli_t2_method_checked_before_any_output(tmp_path, sample_scans, cmd):
    out = tmp_path / "out"
    visits = [sample_scans / "pre"] + ([sample_scans / "post"] if cmd == "pair" else [])
    r = run(cmd, *visits, "--out", out, "--t2-method", "foo", timeout=120)
    one_line_error(r, "--t2-method", "'foo'", "epg, mono, loglinear")
    assert not out.exists() and not list(tmp_path.iterdir())


# -- finding 13: t2map --overwrite removes the earlier run's maps it does not write -----------------------------------


def write_mese(path: Path, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    te = 10.0 * np.arange(1, 9)
    s0 = 600.0 + 100.0 * rng.random((10, 10, 2))
    data = s0[..., None] * np.exp(-te / 80.0) + rng.normal(0, 5.0, (10, 10, 2, 8))
    nib.save(nib.Nifti1Image(np.abs(data).astype(np.float32), np.diag([1.0, 1.0, 3.0, 1.0])), str(path))
    path.with_name(path.name.replace(".nii.gz", ".json")).write_text(json.dumps({"EchoTime": [t / 1000 for t in te]}))
    return path


def test_t2map_overwrite_with_another_method_removes_the_old_b1_map(tmp_path):
    src = write_mese(tmp_path / "mese.nii.gz")
    d = tmp_path / "t2"
    d.mkdir()
    r = run("t2map", src, "-o", d / "x.nii.gz")
    assert r.returncode == 0, r.stderr
    assert (d / "x_b1.nii.gz").is_file() and (d / "x_b1.json").is_file()
    r = run("t2map", src, "-o", d / "x.nii.gz", "--overwrite", "--method", "mono")
    assert r.returncode == 0, r.stderr
    assert not (d / "x_b1.nii.gz").exists() and not (d / "x_b1.json").exists()
    said = " ".join(r.stdout.split())
    assert "removed" in said and str(d / "x_b1.nii.gz") in said and "no b1 map" in said, said
    assert json.loads((d / "x_s0.json").read_text())["T2Fit"]["method"] == "mono"
    assert sorted(p.name for p in d.iterdir()) == sorted(
        ["x.nii.gz", "x.json"] + [f"x_{k}.{e}" for k in ("s0", "r2", "flags") for e in ("nii.gz", "json")])


def test_t2map_refuses_an_old_b1_map_without_overwrite(tmp_path):
    src = write_mese(tmp_path / "mese.nii.gz")
    d = tmp_path / "t2"
    d.mkdir()
    assert run("t2map", src, "-o", d / "x.nii.gz").returncode == 0
    for p in d.iterdir():
        if "_b1" not in p.name:
            p.unlink()
    r = run("t2map", src, "-o", d / "x.nii.gz", "--method", "mono")
    one_line_error(r, "x_b1", "--overwrite")
    assert sorted(p.name for p in d.iterdir()) == ["x_b1.json", "x_b1.nii.gz"]


def test_t2map_overwrite_never_removes_its_input(tmp_path):
    src = write_mese(tmp_path / "x_b1.nii.gz")  # named like a b1 map of -o x.nii.gz
    before = hashlib.sha256(src.read_bytes()).hexdigest()
    r = run("t2map", src, "-o", tmp_path / "x.nii.gz", "--overwrite", "--method", "mono")
    assert r.returncode == 0, r.stderr
    assert hashlib.sha256(src.read_bytes()).hexdigest() == before and (tmp_path / "x_b1.json").is_file()


def test_t2map_non_nifti_name_hint_is_its_own(tmp_path):
    src = write_mese(tmp_path / "mese.nii.gz")
    line = one_line_error(run("t2map", src, "-o", tmp_path / "y.txt"), ".nii.gz", "-o t2.nii.gz")
    assert "labels" not in line


def test_t2map_uncompressed_nii_output_is_readable(tmp_path):
    """``-o x.nii`` was the gzip-compressed map renamed to .nii, which nibabel cannot read."""
    src = write_mese(tmp_path / "mese.nii.gz")
    r = run("t2map", src, "-o", tmp_path / "x.nii", "--method", "mono")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "x.nii").read_bytes()[:2] != b"\x1f\x8b"  # not gzip
    img = nib.load(tmp_path / "x.nii")
    assert img.shape == (10, 10, 2) and np.isfinite(np.asarray(img.dataobj)).mean() > 0.9
    assert json.loads((tmp_path / "x.json").read_text())["T2Fit"]["method"] == "mono"
    assert not (tmp_path / "x_t2_ms.nii.gz").exists() and not (tmp_path / "x_t2_ms.json").exists()
