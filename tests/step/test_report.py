"""The step's Markdown report and metrics (step.report): what a person reads in the KFP UI.

Member names come from untrusted archives: they must come out of the Markdown as the text they are, never as
table structure, HTML, links or emphasis. The HTML assertions render with Python-Markdown (a test dependency),
the way a Markdown viewer would.
"""

from __future__ import annotations

import html
import os
import re
import stat
from pathlib import Path

import markdown
import pytest

from dummy_training import contract
from dummy_training.engine.tar_scan import MemberInfo
from dummy_training.errors import RuntimeIOError
from dummy_training.step import report
from dummy_training.step.repack import RepackResult

HOSTILE = [
    "pipe|in|name.bin",
    "back`tick`s.txt",
    "new\nline\r\n.txt",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click](javascript:alert(1))",
    "![img](http://127.0.0.1/x.png)",
    "**bold** _em_ *em*",
    "back\\slash\\|.txt",
    "bidi\u202egnp.exe",
    "tab\there",
    "&amp; entity",
    "csi\x9b31mred\x9b0m.bin",  # C1: \x9b is CSI, a one-byte ESC [
    "nel\x85del\x7fpad\x80.txt",
    "x" * 400,
]


def _result(names: list[str], *, decision: str = contract.DECISION_INJECTED, method: str = "splice",
            output: str = "/out/model.tar.gz", member_count: int | None = None) -> RepackResult:
    members = [MemberInfo(name, 10 * i, "file") for i, name in enumerate(names, 1)]
    return RepackResult(
        decision=decision, output=output, output_size=5000, member_count=member_count or len(members),
        members=members, method=method, elapsed_seconds=1.25, model_location="/in/model.tar.gz",
        hyperparameters_location="/in/hp.json" if decision == contract.DECISION_INJECTED else None,
        input_size=4000, uncompressed_size=10000, kept_prefix=3000, bytes_read=4000, bytes_copied=3000,
        bytes_written=2000, scanner="zlib-ng", publish_seconds=0.25, model_label=contract.LABEL_FLAG,
        hyperparameters_label=contract.LABEL_CHANNEL if decision == contract.DECISION_INJECTED else "",
        hyperparameters=b'{"epochs": 3}' if decision == contract.DECISION_INJECTED else None,
    )


def _html(text: str) -> str:
    return markdown.markdown(text, extensions=["tables", "fenced_code"])


def _members_table(page: str) -> list[list[str]]:
    """The cells (as plain text) of every body row of the last table: the members."""
    table = page.rsplit("<table>", 1)[1].split("</table>", 1)[0]
    body = table.split("<tbody>", 1)[1]
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)
    return [[html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<td>(.*?)</td>", r, re.S)]
            for r in rows]


def _shown(name: str) -> str:
    """How md_text shows a name: control and bidi characters as escapes, cut at MAX_TEXT."""
    cut = name[:report.MAX_TEXT]
    out = "".join(f"\\x{ord(c):02x}" if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0
                  else f"\\u{ord(c):04x}" if ord(c) == 0x202E else c for c in cut)
    return out + ("…" if len(name) > report.MAX_TEXT else "")


def test_hostile_member_names_stay_text_in_the_table() -> None:
    text = report.render(_result(HOSTILE))
    page = _html(text)
    assert "<script" not in page and "<img" not in page and "<a " not in page and "<em>" not in page
    assert "<strong>bold" not in page
    rows = _members_table(page)
    assert len(rows) == len(HOSTILE) + 1  # every member, then the injected hyperparameters.json
    assert all(len(r) == 4 for r in rows), "a name broke the table's columns"
    for row, name in zip(rows, HOSTILE, strict=False):
        assert row[1] == _shown(name)
    assert "\u202e" not in text  # the bidi override is shown as an escape, never applied
    assert not any(0x7F <= ord(c) < 0xA0 or (ord(c) < 0x20 and c != "\n") for c in text)  # no C0/C1 control
    assert "csi\\\\x9b31mred" in text  # shown as \x9b (its backslash escaped for Markdown)
    # the raw Markdown: one line per row, the pipes of names escaped
    table_lines = [line for line in text.split("## Members", 1)[1].splitlines() if line.startswith("| ")]
    assert len(table_lines) == len(HOSTILE) + 2  # header, members, injected
    for line in table_lines:
        assert len(re.findall(r"(?<!\\)\|", line)) == 5, line


def test_more_members_than_listed_end_in_one_summary_line() -> None:
    names = [f"shard-{i:04d}.bin" for i in range(120)]
    text = report.render(_result(names, member_count=1234), max_members=50)
    rows = _members_table(_html(text))
    assert [r[1] for r in rows[:50]] == names[:50]
    summary = [r for r in rows if "more members" in r[1]]
    assert len(summary) == 1 and "1,184 more members" in summary[0][1]
    assert rows[-1][:2] == ["1,235", contract.HYPERPARAMETERS_FILENAME] and "injected" in rows[-1][2]
    assert len(rows) == 52
    assert text.count("more members") == 1


def test_inject_report_names_decision_inputs_and_figures() -> None:
    text = report.render(_result(["config.json", "weights.bin"]), sha256="ab" * 32, artifact_uri="minio://x/y")
    page = _html(text)
    assert "<strong>Decision: injected.</strong>" in page
    assert "the hyperparameters from <code>[Input Channel]</code> /in/hp.json (13 bytes)" in page
    assert "member #3, hyperparameters.json" in page
    assert "<td>model</td>\n<td><code>[Argument]</code></td>\n<td>/in/model.tar.gz</td>" in page
    assert f"<code>{'ab' * 32}</code>" in page and "minio://x/y" in page
    for figure in ("Compression ratio</td>\n<td>2.50", "Kept verbatim</td>\n<td>3.0 KB (3,000 bytes)",
                   "Bytes written</td>\n<td>2.0 KB (2,000 bytes)", "Scanner</td>\n<td>zlib-ng",
                   "Duration</td>\n<td>1.25 s"):
        assert figure in page, figure
    assert "\"epochs\": 3" in html.unescape(page)  # the injected file, shown


def test_preserve_report_names_the_archives_own_file_and_the_ignored_hyperparameters() -> None:
    result = _result(["config.json", "./hyperparameters.json"], decision=contract.DECISION_PRESERVED, method="copy")
    result.hyperparameters_location, result.hyperparameters_label = "/in/hp.json", contract.LABEL_FLAG
    page = _html(report.render(result))
    assert "<strong>Decision: preserved.</strong>" in page
    assert "member #2, ./hyperparameters.json" in page
    assert "byte for byte" in page and "were ignored" in page
    assert "injected" not in _members_table(page)[-1][2]


def test_s3_output_counts_uploaded_bytes_and_has_no_sha256() -> None:
    result = _result(["a"], output="s3://bucket/out/model.tar.gz")
    assert report.metrics(result)["bytes_uploaded"] == 2000.0
    assert "bytes_written" not in report.metrics(result)
    text = report.render(result)
    assert "| Bytes uploaded | 2.0 KB (2,000 bytes) |" in text and "Copied (server-side copy)" in text
    assert "never read back" in text


def test_metrics_are_the_results_figures() -> None:
    assert report.metrics(_result(["a", "b"])) == {
        "injected": 1.0, "input_bytes": 4000.0, "output_bytes": 5000.0, "uncompressed_bytes": 10000.0,
        "compression_ratio": 2.5, "members": 3.0, "seconds": 1.25, "bytes_read": 4000.0,
        "bytes_kept_verbatim": 3000.0, "bytes_copied": 3000.0, "bytes_written": 2000.0,
    }


def test_code_block_fence_outgrows_backticks_inside() -> None:
    block = report.md_code_block('{"a": "````"}', "json")
    assert block.startswith("`````json\n") and block.endswith("\n`````")
    assert '"````"' in html.unescape(_html(block))


def test_member_counts_are_the_outputs_in_report_metrics_and_summary() -> None:
    result = _result(["a", "b", "c"])  # injected: 3 from the input + hyperparameters.json
    assert result.summary()["member_count"] == 4 == report.metrics(result)["members"]
    text = report.render(result)
    assert "| Members | 4 (3 kept + 1 injected) |" in text and "## Members (4 in the output: 3 from the input" in text
    kept = _result(["a", "hyperparameters.json"], decision=contract.DECISION_PRESERVED, method="copy")
    assert kept.summary()["member_count"] == 2 and "| Members | 2 |" in report.render(kept)


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_written_files_follow_the_umask_like_the_model(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        report.write_report(tmp_path / "r.md", "x\n")
        report.write_file(tmp_path / "result.json", b"{}", what="result")
    finally:
        os.umask(old)
    for name in ("r.md", "result.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644 & ~umask, name


def test_write_report_is_atomic_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "r.md"
    report.write_report(target, "one\n")
    report.write_report(target, "two\n")
    assert target.read_text() == "two\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["r.md"]  # no temp file left
    (tmp_path / "dir.md").mkdir()
    with pytest.raises(RuntimeIOError, match="cannot write report"):
        report.write_report(tmp_path / "dir.md", "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.md", "sub"]
