"""The step's report: the Markdown a person reads (KFP UI ``system.Markdown``, ``--report PATH``) and the scalar
metrics the KFP UI compares across runs (``system.Metrics``), both made from a ``RepackResult``.

Everything here is pure (no I/O) except ``write_report`` and ``local_sha256``. Member names come from untrusted
archives and locations from users: every such string goes through ``md_text`` (or ``md_code_block``) before it
reaches the Markdown, so a hostile name can neither break a table, nor inject HTML or links, nor hide itself
behind control or bidi characters.

The launchers (``dummy_training.sagemaker.report``) reuse ``md_text``, ``md_table`` and ``write_report``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dummy_training import __version__, contract
from dummy_training.console import is_control
from dummy_training.ends.base import is_s3_uri
from dummy_training.errors import InvalidInputError, RuntimeIOError
from dummy_training.step.repack import RepackResult, human_bytes, utc_text

#: Members listed in the report's table; past this one summary line says how many more there are.
REPORT_MEMBERS = 50
#: Longest member name (or location) shown in full; longer ones are cut with an ellipsis.
MAX_TEXT = 300
#: Mode of a written report or result file before the umask: the model's (``ends.local_file``).
FILE_MODE = 0o644
#: Characters of the injected hyperparameters.json shown in the report.
MAX_HYPERPARAMETERS_SHOWN = 2000

#: Markdown punctuation escaped with a backslash (the set CommonMark and Python-Markdown both honour, plus the
#: table pipe); ``<``, ``>`` and ``&`` become entities, so no raw HTML gets through.
_BACKSLASHED = frozenset("\\`*_[]|")
_ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}
#: Invisible characters that reorder or hide text (bidi overrides and isolates, zero-width characters).
_INVISIBLE = frozenset([*range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0xFEFF])


def _visible(ch: str) -> str:
    code = ord(ch)
    if is_control(code):
        return f"\\x{code:02x}"
    if code in _INVISIBLE:
        return f"\\u{code:04x}"
    return ch


def md_text(text: object, limit: int = MAX_TEXT) -> str:
    """``text`` as inert Markdown inline text (a table cell or a sentence): shown as it is, never interpreted.

    Control, bidi and zero-width characters are shown as ``\\xNN`` / ``\\uNNNN``; Markdown punctuation is
    backslash-escaped; ``<>&`` become entities; past ``limit`` characters the text is cut with an ellipsis."""
    raw = str(text)
    cut = len(raw) > limit
    visible = "".join(_visible(ch) for ch in (raw[:limit] if cut else raw))
    out = "".join("\\" + ch if ch in _BACKSLASHED else _ENTITIES.get(ch, ch) for ch in visible)
    return out + ("…" if cut else "")


def md_code_block(text: str, language: str = "") -> str:
    """A fenced code block holding ``text`` verbatim: the fence is longer than any backtick run inside."""
    longest, run = 0, 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text.rstrip(chr(10))}\n{fence}"


def md_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table. Cells are used as they are: escape untrusted text with ``md_text``."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def label_text(label: str) -> str:
    """A resolution label (``contract.LABEL_*``, e.g. ``[Input Channel]``) as inline code; "—" for none."""
    if not label:
        return "—"
    if "`" in label or "|" in label:  # not one of ours: show it as text
        return md_text(label)
    return f"`{label}`"


def size_text(n: int) -> str:
    """``1.2 MB (1,234,567 bytes)``; small sizes only in bytes."""
    return f"{n:,} bytes" if n < 1000 else f"{human_bytes(n)} ({n:,} bytes)"


def write_report(path: str | Path, text: str, *, endpoint_url: str | None = None) -> None:
    """Write ``text`` to ``path`` (a local path or an ``s3://`` URI) with ``write_file``."""
    write_file(path, text.encode("utf-8"), endpoint_url=endpoint_url, what="report")


def write_file(location: str | Path, data: bytes, *, endpoint_url: str | None = None, what: str = "file") -> None:
    """Write ``data`` to ``location``, whole or not at all.

    A local path: a temp file in the same directory, then a rename (a reader never sees half a file); the parent
    directory is created; the file's mode is ``FILE_MODE`` less the umask (0644 under umask 022), as the model's.
    An ``s3://bucket/key`` URI: one PutObject (an object appears whole or not at all) through ``aws.client``
    with ``endpoint_url`` (the repack's ``--endpoint-url``); AWS errors become the
    one-line errors of every other S3 call (``aws.translating``)."""
    if is_s3_uri(str(location)):
        from dummy_training import aws

        bucket, key = aws.parse_s3_uri(str(location))
        if not key or key.endswith("/"):
            raise InvalidInputError(f"cannot write {what} {location}: the URI names no object key")
        with aws.translating(f"write {what} {location}"):
            aws.client("s3", endpoint_url=endpoint_url, region=aws.default_region()).put_object(
                Bucket=bucket, Key=key, Body=data)
        return
    target = Path(location)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # the mode of the model itself (ends.local_file): 0644 less the umask, not mkstemp's 0600
        tmp = str(target.parent / f".{target.name}.{secrets.token_hex(6)}.part")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except OSError as exc:
        raise RuntimeIOError(f"cannot write {what} {target}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise RuntimeIOError(f"cannot write {what} {target}: {exc.strerror}") from None
        raise


def local_sha256(result: RepackResult) -> str | None:
    """SHA-256 of a local output (one more read of it, usually from the page cache); None for an S3 output,
    whose kept prefix was copied server-side and never read back."""
    if is_s3_uri(result.output):
        return None
    from dummy_training.ends.local_file import sha256_file

    return sha256_file(result.output)


# ------------------------------------------------------------------------------------------------ metrics
def metrics(result: RepackResult) -> dict[str, float]:
    """The scalar figures of a repack, by metric name (what ``Output[Metrics].log_metric`` records).

    ``bytes_uploaded`` for an S3 output, ``bytes_written`` for a local one: the same counter, named for what it
    cost."""
    return summary_metrics(result.summary())


def summary_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """``metrics`` from a ``RepackResult.summary()`` (what ``--result-json`` writes): a launcher reads the
    figures of its job's repack from there. Missing or non-numeric fields count as 0."""
    def num(key: str) -> float:
        value = summary.get(key)
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0

    written = "bytes_uploaded" if is_s3_uri(str(summary.get("output") or "")) else "bytes_written"
    input_size, uncompressed = num("input_size"), num("uncompressed_size")
    return {
        "injected": 1.0 if summary.get("decision") == contract.DECISION_INJECTED else 0.0,
        "input_bytes": input_size,
        "output_bytes": num("output_size"),
        "uncompressed_bytes": uncompressed,
        "compression_ratio": round(uncompressed / input_size if input_size else 0.0, 3),
        "members": num("member_count"),
        "seconds": round(num("elapsed_seconds"), 3),
        "bytes_read": num("bytes_read"),
        "bytes_kept_verbatim": num("kept_prefix"),
        "bytes_copied": num("bytes_copied"),
        written: num("bytes_written"),
    }


def _ratio(result: RepackResult) -> float:
    return result.uncompressed_size / result.input_size if result.input_size else 0.0


# ------------------------------------------------------------------------------------------------- report
def _root_member(result: RepackResult) -> tuple[int, str] | None:
    """(1-based position, name) of the archive's own root hyperparameters.json among the listed members."""
    for i, m in enumerate(result.members, 1):
        if m.name in contract.ROOT_HYPERPARAMETERS_NAMES and m.type in ("file", "hardlink"):
            return i, m.name
    return None


def _hyperparameters_source(result: RepackResult) -> str:
    if result.hyperparameters_location is None:
        return "none given or found"
    size = f" ({size_text(len(result.hyperparameters))})" if result.hyperparameters is not None else ""
    label = f"{label_text(result.hyperparameters_label)} " if result.hyperparameters_label else ""
    return f"{label}{md_text(result.hyperparameters_location)}{size}"


def decision_text(result: RepackResult) -> str:
    """The decision and why, in one paragraph."""
    hp_name = contract.HYPERPARAMETERS_FILENAME
    if result.decision == contract.DECISION_PRESERVED:
        found = _root_member(result)
        where = (f"member #{found[0]}, {md_text(found[1])}" if found
                 else f"beyond the first {len(result.members)} members")
        text = (f"**Decision: preserved.** The archive already has a root {md_text(hp_name)} ({where}), so it "
                "was kept: ")
        if result.method == "copy":
            text += "the output is the input, byte for byte."
        else:
            text += "the input is a plain tar, so the output is the same tar, gzip-compressed (contents unchanged)."
        if result.hyperparameters_location is not None:
            text += (" The given hyperparameters were ignored, the archive's own file wins: "
                     f"{_hyperparameters_source(result)}.")
        return text
    text = (f"**Decision: injected.** The archive has no root {md_text(hp_name)}, so the hyperparameters from "
            f"{_hyperparameters_source(result)} were added at the archive root as member "
            f"#{result.member_count + 1}, {md_text(hp_name)}. ")
    if result.mtime is not None:
        text += (f"Its mtime is {utc_text(result.mtime)} ({md_text(result.mtime_source)}), owner 0:0, mode 0644, so "
                 "the same inputs give the same bytes. ")
    if result.method == "splice":
        text += (f"Method splice: the first {size_text(result.kept_prefix)} of the compressed input were kept "
                 "verbatim; only the tail after the last deflate block boundary was re-compressed.")
    else:
        text += ("Method reencode: the archive was decompressed and compressed again (a plain tar, or members "
                 "the splice cannot take); nothing was kept verbatim.")
    return text


def _member_rows(result: RepackResult, limit: int) -> list[list[str]]:
    shown = result.members[:limit]
    rows = [[f"{i:,}", md_text(m.display_name), m.type, size_text(m.size) if m.type == "file" else ""]
            for i, m in enumerate(shown, 1)]
    more = result.member_count - len(shown)
    if more > 0:
        rows.append(["…", f"*… and {more:,} more members, not listed (the first {len(shown):,} of "
                          f"{result.member_count:,} are)*", "", ""])
    if result.decision == contract.DECISION_INJECTED:
        size = size_text(len(result.hyperparameters)) if result.hyperparameters is not None else ""
        rows.append([f"{result.member_count + 1:,}", f"**{md_text(contract.HYPERPARAMETERS_FILENAME)}**",
                     "file, **injected**", size])
    return rows


def render(result: RepackResult, *, sha256: str | None = None, artifact_uri: str | None = None,
           max_members: int = REPORT_MEMBERS, heading_level: int = 1) -> str:
    """The report of one repack as Markdown. ``sha256`` defaults to ``result.sha256``; ``artifact_uri`` is where
    KFP stores the output artifact (shown next to the path the pod wrote); ``heading_level`` 2 nests the report
    under a launcher's."""
    h = "#" * heading_level
    sha256 = sha256 or result.sha256
    injected = result.decision == contract.DECISION_INJECTED
    out_is_s3 = is_s3_uri(result.output)
    title = f"{contract.HYPERPARAMETERS_FILENAME} injected" if injected else "archive preserved"
    parts = [f"{h} dummy-training repack: {md_text(title)}", decision_text(result)]

    parts += [f"{h}# Inputs", md_table(["Input", "Found at", "Location"], [
        ["model", label_text(result.model_label), md_text(result.model_location)],
        ["hyperparameters", label_text(result.hyperparameters_label),
         md_text(result.hyperparameters_location) if result.hyperparameters_location is not None
         else "none given or found"],
    ])]

    digest = f"`{sha256}`" if sha256 else ("not computed: the kept prefix of an S3 output is copied server-side "
                                           "and never read back" if out_is_s3 else "not computed")
    written = "uploaded" if out_is_s3 else "written"
    parts += [f"{h}# Output", md_table(["Output", "Value"], [
        ["URI" if out_is_s3 else "Path", md_text(result.output)],
        *([["KFP artifact", md_text(artifact_uri)]] if artifact_uri else []),
        ["Size", size_text(result.output_size)],
        ["sha256", digest],
        ["Members", f"{result.output_member_count:,}"
                    + (f" ({result.member_count:,} kept + 1 injected)" if injected else "")],
    ])]

    ratio = _ratio(result)
    copied_how = "server-side copy" if out_is_s3 else "copy_file_range"
    parts += [f"{h}# Figures", md_table(["Figure", "Value"], [
        ["Input size (compressed)", size_text(result.input_size)],
        ["Uncompressed tar", size_text(result.uncompressed_size)],
        ["Compression ratio", f"{ratio:.2f}" if ratio else "—"],
        ["Scanner", md_text(result.scanner or "?")],
        ["Method", md_text(result.method)],
        ["Bytes read", size_text(result.bytes_read)],
        ["Kept verbatim", size_text(result.kept_prefix)],
        [f"Copied ({copied_how})", size_text(result.bytes_copied)],
        [f"Bytes {written}", size_text(result.bytes_written)],
        ["Duration", f"{result.elapsed_seconds:.2f} s (publishing {result.publish_seconds:.2f} s)"],
        ["dummy-training", md_text(__version__)],
    ])]

    if injected and result.hyperparameters is not None:
        text = result.hyperparameters.decode("utf-8", errors="replace")
        with contextlib.suppress(ValueError):  # re-indented when it parses (it does: resolve checked it)
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        note = ""
        if len(text) > MAX_HYPERPARAMETERS_SHOWN:
            note = f"\n\n*(the first {MAX_HYPERPARAMETERS_SHOWN:,} of {len(text):,} characters)*"
            text = text[:MAX_HYPERPARAMETERS_SHOWN]
        parts += [f"{h}# Injected {md_text(contract.HYPERPARAMETERS_FILENAME)}", md_code_block(text, "json") + note]

    listed = min(max_members, len(result.members))
    parts += [f"{h}# Members ({result.output_member_count:,} in the output"
              + (f": {result.member_count:,} from the input, 1 injected)" if injected else ")"),
              md_table(["#", "Name", "Type", "Size"], _member_rows(result, listed))]
    return "\n\n".join(parts) + "\n"
