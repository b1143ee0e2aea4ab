"""The real-world corpus tier (issue 19; ``pytest -m corpus tests/corpus``, run by ``.ci/corpus.sh``): archives
written at test time by GNU tar, bsdtar, MirBSD pax, busybox tar, 7-Zip (7zz), npm pack and git archive, with
deep trees (a '/' at every field boundary) by each writer that holds long names, and compressed by gzip, pigz,
zopfli, igzip and bgzip (tests/corpus/writers.py), each

- listed by the engine exactly as tarfile and libarchive list it (name, type, size, link target, offset;
  normalisation in tests/corpus/oracle.py),
- repacked with both scanners: the same exit code and the same bytes,
- preserved byte for byte when it has a root hyperparameters.json, else injected: the output read by tarfile,
  libarchive, GNU tar and bsdtar lists the input's members plus one root hyperparameters.json (0:0, no names,
  0644, the reported mtime), and GNU tar and bsdtar extract input and output to the same tree but for it.

A missing tool fails the case, naming its Debian package (no skip). At the end the tier prints, per writer, how
many archives were accepted (injected / preserved) and refused, and why (``conftest.pytest_terminal_summary``).
star is not among the writers: Debian 12 has no star package.
"""

from __future__ import annotations

import pytest
from corpus.checks import (
    check_extraction,
    check_member_lists,
    check_ok,
    check_output_listing,
    check_refused,
    check_scanners_agree,
)
from corpus.conftest import Corpus
from corpus.oracle import engine_rows, tar_stream
from corpus.writers import CASES, Case

from dummy_training.errors import InvalidInputError

pytestmark = pytest.mark.corpus

#: cases that fail on the current engine, each confirmed in /work/notes/corpus-findings.md (strict: a fixed case
#: turns red until its entry is removed here)
KNOWN: dict[tuple[str, str], str] = {}  # F1 fixed in 7207bd4, F2 in 2dacef2


def _params(test: str) -> list:
    return [pytest.param(c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=KNOWN[(test, c.id)])]
                         if (test, c.id) in KNOWN else []) for c in CASES]


@pytest.mark.parametrize("case", _params("members"))
def test_engine_lists_what_the_readers_list(case: Case, corpus: Corpus) -> None:
    if case.expect == "refuse":
        with pytest.raises(InvalidInputError):
            engine_rows(tar_stream(corpus.archive(case)))
        return
    check_member_lists(corpus.archive(case), case.readers)


@pytest.mark.parametrize("case", _params("scanners"))
def test_both_scanners_repack_to_the_same_bytes(case: Case, corpus: Corpus) -> None:
    one, two = corpus.repacks(case)
    check_scanners_agree(one, two, corpus.archive(case))
    if case.expect == "refuse":
        check_refused(one)
        check_refused(two)
    else:
        check_ok(case, one, corpus.archive(case))


@pytest.mark.parametrize("case", [c for c in _params("readback") if c.values[0].expect != "refuse"])
def test_readers_read_the_output_as_promised(case: Case, corpus: Corpus) -> None:
    model = corpus.archive(case)
    one, _ = corpus.repacks(case)
    check_ok(case, one, model)
    if case.expect == "inject":
        check_output_listing(model, one, external=True)
    check_extraction(model, one, model.parent, ("gnu-tar", "bsdtar"), injected=case.expect == "inject")
