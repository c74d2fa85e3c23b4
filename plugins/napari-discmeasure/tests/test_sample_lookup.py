"""File > Open Sample finds sample_scans/ as ``discmeasure demo`` does (QA finding 3): from
``$DISCMEASURE_SAMPLE_SCANS``, or ``./sample_scans`` after a regular (non-editable) install, not
only beside an editable install. A lookup test: no viewer."""

from pathlib import Path

import pytest

import discmeasure
from discmeasure.errors import InputError

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "sample_scans"
ENV_VAR = "DISCMEASURE_SAMPLE_SCANS"


def fake_samples(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in ("pre", "post"):
        (folder / name).symlink_to(SAMPLE / name, target_is_directory=True)
    return folder


def regular_install(monkeypatch, tmp_path):
    fake = tmp_path / "venv" / "lib" / "python3.11" / "site-packages" / "discmeasure" / "__init__.py"
    monkeypatch.setattr(discmeasure, "__file__", str(fake))


@pytest.fixture(autouse=True)
def _samples_present():
    if not (SAMPLE / "pre").is_dir():
        pytest.skip("sample_scans/pre missing")


def test_open_sample_honours_the_environment_variable(tmp_path, monkeypatch):
    from napari_discmeasure import _sample_data

    mine = fake_samples(tmp_path / "my samples")
    monkeypatch.setenv(ENV_VAR, str(mine))
    regular_install(monkeypatch, tmp_path)
    assert _sample_data._root() == mine
    layers = _sample_data.sample_pre()
    assert layers and all(len(t) >= 2 for t in layers)


def test_open_sample_in_the_current_folder_after_a_regular_install(tmp_path, monkeypatch):
    from napari_discmeasure import _sample_data

    monkeypatch.delenv(ENV_VAR, raising=False)
    checkout = tmp_path / "checkout"
    fake_samples(checkout / "sample_scans")
    regular_install(monkeypatch, tmp_path)
    monkeypatch.chdir(checkout)
    assert _sample_data._root().resolve() == (checkout / "sample_scans").resolve()


def test_open_sample_without_samples_says_what_to_do(tmp_path, monkeypatch):
    from napari_discmeasure import _sample_data

    monkeypatch.delenv(ENV_VAR, raising=False)
    regular_install(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError) as e:
        _sample_data.sample_post()
    msg = str(e.value)
    assert ENV_VAR in msg and "make_sample_scans.py" in msg and str(tmp_path / "sample_scans") in msg, msg
