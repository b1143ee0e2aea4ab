"""Byte-patched archives (tests/corpus/hostile.py; issue 19), repacked by the CLI with both scanners. Python only:
the default suite. Each test first checks with tarfile that the trick is real (the hidden member is there), so
none can pass vacuously."""

from __future__ import annotations

from pathlib import Path

import pytest
from corpus.checks import check_member_lists, check_output_listing, check_refused, check_scanners_agree
from corpus.conftest import repack
from corpus.hostile import GLOBAL_PATH, HIDDEN_HP, HOSTILE, LEGIT
from corpus.oracle import ROOT_HP, norm, tarfile_infos, tarfile_rows
from corpus.writers import Case, python_gzip


def _model(tmp_path: Path, tar: bytes) -> Path:
    model = tmp_path / "model.tar.gz"
    model.write_bytes(python_gzip(tar))
    return model


def _both(model: Path, tmp_path: Path):  # noqa: ANN202
    return repack(model, tmp_path, 1), repack(model, tmp_path, 2)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_archive_is_refused(name: str, tmp_path: Path) -> None:
    tar = HOSTILE[name]()
    names = [i.name for i in tarfile_infos(tar)]
    links = [i.linkname for i in tarfile_infos(tar)]
    assert "../escaped.txt" in names or "model/../../etc/passwd" in links, names  # tarfile sees the trick
    for r in _both(_model(tmp_path, tar), tmp_path):
        check_refused(r)


@pytest.mark.parametrize("name", sorted(HIDDEN_HP))
def test_hidden_root_hyperparameters_are_never_overwritten(name: str, tmp_path: Path) -> None:
    """tarfile sees the model's own root hyperparameters.json: the engine must not inject a second one (which
    would replace it on extraction). Behind a sized hard link or directory the readers agree (no data after
    either): preserved byte for byte. Behind a sized symlink they do not (GNU tar skips the size): refused."""
    tar = HIDDEN_HP[name]()
    assert ROOT_HP in [row.name for row in tarfile_rows(tar)]
    model = _model(tmp_path, tar)
    one, two = _both(model, tmp_path)
    check_scanners_agree(one, two, model)
    if "type-2" in name:
        check_refused(one)
    else:
        assert one.rc == 0 and one.result is not None, one.stderr
        assert one.result["decision"] == "preserved" and one.output == model.read_bytes(), one.result


#: confirmed failures of the current engine (/work/notes/corpus-findings.md); strict: remove when fixed
KNOWN_LEGIT: dict[str, str] = {}  # F1 (global pax owner/mtime on the injected member): fixed in 7207bd4


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.xfail(strict=True, reason=KNOWN_LEGIT[n])]
                                               if n in KNOWN_LEGIT else []) for n in sorted(LEGIT)])
def test_legit_old_writer_archive_repacks(name: str, tmp_path: Path) -> None:
    tar = LEGIT[name]()
    model = _model(tmp_path, tar)
    check_member_lists(model, ("tarfile",))
    one, two = _both(model, tmp_path)
    check_scanners_agree(one, two, model)
    assert one.rc == 0, one.stderr
    assert one.result is not None and one.result["decision"] == "injected"
    check_output_listing(model, one, external=False)


@pytest.mark.parametrize("name", sorted(GLOBAL_PATH))
def test_global_pax_path_cannot_rename_the_injected_member(name: str, tmp_path: Path) -> None:
    """A global ``path`` renames every later member in tarfile: refused, preserved (when tarfile sees a root
    hyperparameters.json), or injected so that tarfile still reads it as hyperparameters.json, 0:0."""
    tar = GLOBAL_PATH[name]()
    model = _model(tmp_path, tar)
    one, two = _both(model, tmp_path)
    check_scanners_agree(one, two, model)
    tarfile_sees_hp = any(norm(i.name) == ROOT_HP for i in tarfile_infos(tar))
    if one.rc == 2:
        check_refused(one)
    elif tarfile_sees_hp:
        assert one.rc == 0 and one.result is not None and one.result["decision"] == "preserved", one.stderr
    else:
        assert one.rc == 0, one.stderr
        check_output_listing(model, one, external=False)


def test_case_ids_are_unique() -> None:
    from corpus.writers import CASES, PYTHON_CASES

    ids = [c.id for c in CASES + PYTHON_CASES]
    assert len(ids) == len(set(ids))
    assert all(isinstance(c, Case) for c in CASES)
