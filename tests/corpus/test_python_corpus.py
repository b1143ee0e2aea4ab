"""The corpus cases that need only Python (default suite): archives written at test time by Python's tarfile in
its three formats (plain, gzip, and a multi-member gzip with an empty first member), each listed by the engine as
tarfile lists it, repacked with both scanners to the same bytes, preserved byte for byte or injected so that
tarfile lists and extracts the output as the input plus one root hyperparameters.json. The external writers and
readers are the corpus tier (test_corpus.py, ``pytest -m corpus``)."""

from __future__ import annotations

import pytest
from corpus.checks import check_extraction, check_member_lists, check_ok, check_output_listing, check_scanners_agree
from corpus.conftest import Corpus
from corpus.writers import PYTHON_CASES, Case


@pytest.mark.parametrize("case", PYTHON_CASES, ids=[c.id for c in PYTHON_CASES])
def test_engine_lists_what_tarfile_lists(case: Case, corpus: Corpus) -> None:
    check_member_lists(corpus.archive(case), ("tarfile",))


@pytest.mark.parametrize("case", PYTHON_CASES, ids=[c.id for c in PYTHON_CASES])
def test_repack_reads_back_in_tarfile(case: Case, corpus: Corpus) -> None:
    model = corpus.archive(case)
    one, two = corpus.repacks(case)
    check_scanners_agree(one, two, model)
    check_ok(case, one, model)
    if case.expect == "inject":
        check_output_listing(model, one, external=False)
    check_extraction(model, one, model.parent, ("tarfile",), injected=case.expect == "inject")
