"""Prose from documentation packages: read a .deb without installing it (ar archive -> data.tar.*), take the
reStructuredText sources Sphinx ships (``html/_sources/**/*.rst.txt``) and strip the markup to paragraphs.

Dropped: directives that hold code, tables, images, indexes, includes (their bodies too), literal blocks
(after ``::``), doctest blocks, field lists, comments, labels, tables, section adornments. Kept: paragraphs,
section titles, list items, and the bodies of admonitions and API descriptions (``note``, ``function`` ...),
with inline markup (roles, literals, links, emphasis) reduced to its text.
Format reference: the reStructuredText specification (docutils), the Debian binary package format deb(5).
"""

from __future__ import annotations

import io
import lzma
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

# ---------------------------------------------------------------------------------------------------------------
# .deb reading
# ---------------------------------------------------------------------------------------------------------------


def deb_members(path: str | Path) -> dict[str, bytes]:
    """The members of a .deb's ar archive (``debian-binary``, ``control.tar.*``, ``data.tar.*``)."""
    data = Path(path).read_bytes()
    if not data.startswith(b"!<arch>\n"):
        raise ValueError(f"{path}: not a .deb (no ar archive signature)")
    members, pos = {}, 8
    while pos + 60 <= len(data):
        header = data[pos : pos + 60]
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError:
            raise ValueError(f"{path}: corrupt ar header at byte {pos}") from None
        members[name] = data[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size & 1)  # members are 2-byte aligned
    return members


def deb_data_tar(path: str | Path) -> tarfile.TarFile:
    """The data archive of a .deb as an open ``TarFile`` (xz, gz, bz2, uncompressed, or zst via ``zstd``)."""
    members = deb_members(path)
    name = next((n for n in sorted(members) if n.startswith("data.tar")), None)
    if name is None:
        raise ValueError(f"{path}: no data.tar member (members: {sorted(members)})")
    payload = members[name]
    if name.endswith(".zst"):
        if not shutil.which("zstd"):
            raise ValueError(f"{path}: data.tar.zst needs the `zstd` program")
        proc = subprocess.run(["zstd", "-dc"], input=payload, capture_output=True)
        if proc.returncode != 0:
            raise ValueError(f"{path}: cannot decompress {name}: {proc.stderr.decode(errors='replace').strip()}")
        payload = proc.stdout
    try:
        return tarfile.open(fileobj=io.BytesIO(payload), mode="r:*")
    except (tarfile.TarError, EOFError, lzma.LZMAError, OSError) as e:
        raise ValueError(f"{path}: corrupt {name} ({e})") from None


def rst_sources(path: str | Path) -> Iterator[tuple[str, str]]:
    """``(relative name, text)`` of every Sphinx ``_sources/**/*.rst.txt`` in a .deb, sorted by name.
    Translations (non-English trees) are skipped."""
    with deb_data_tar(path) as tar:
        found = []
        for member in tar.getmembers():
            if not member.isfile() or "/_sources/" not in member.name or not member.name.endswith(".txt"):
                continue
            rel = member.name.split("/_sources/", 1)[1]
            if rel.startswith("translations/"):
                continue
            found.append((rel, member))
        for rel, member in sorted(found, key=lambda x: x[0]):
            raw = tar.extractfile(member).read()
            yield rel.removesuffix(".txt"), raw.decode("utf-8", errors="replace")


# ---------------------------------------------------------------------------------------------------------------
# reST -> prose
# ---------------------------------------------------------------------------------------------------------------

# Directives whose body is prose (admonitions, API descriptions); every other directive's body is dropped.
_PROSE_DIRECTIVES = frozenset(
    """note warning tip hint important attention caution danger error admonition seealso deprecated
    versionadded versionchanged impl-detail function method class attribute data exception decorator
    decoratormethod classmethod staticmethod module describe option envvar opcode cmdoption abstractmethod
    coroutinefunction coroutinemethod macro member type var struct union enum enumerator c:function c:macro
    c:member c:type c:var c:struct c:union c:enum c:enumerator rubric only container topic sidebar glossary
    centered epigraph highlights pull-quote compound""".split()
)
# Directives whose argument is prose worth keeping (".. note:: Text on the same line").
_PROSE_ARGUMENT = frozenset(
    "note warning tip hint important attention caution danger error seealso admonition rubric topic".split()
)
_DIRECTIVE = re.compile(r"^\.\.\s+(?:[\w-]+:)?([\w-]+)::(?:\s+(.*))?$")
_ADORNMENT = re.compile(r"^([=\-~^\"'`#*+_.:<>])\1{2,}$")
_TABLE_BORDER = re.compile(r"^(\+[-=+]+\+|=+( +=+)+|-+( +-+)+)$")
_FIELD = re.compile(r"^:[^:`\s][^:`]*:(\s|$)")
_BULLET = re.compile(r"^([-*+\u2022]|#\.|\d{1,3}[.)]|\(\d{1,3}\))\s+")
_ROLE = re.compile(r":[\w:+.-]+:`([^`]*)`")
_LINK = re.compile(r"`([^`<]*?)\s*(<[^`>]*>)?`__?")
_LITERAL = re.compile(r"``(.+?)``")
_STRONG = re.compile(r"\*\*(\S(?:.*?\S)?)\*\*")
_EMPHASIS = re.compile(r"(?<![\w*])\*(\S(?:.*?\S)?)\*(?![\w*])")
_FOOTNOTE_REF = re.compile(r"\s*\[(#\w*|\d+|\*)\]_")
_SUBSTITUTION = re.compile(r"\|([\w .-]+)\|(?:_{1,2})?")


def _role_text(match: re.Match) -> str:
    inner = match.group(1)
    if inner.endswith(">") and "<" in inner:
        inner = inner[: inner.rfind("<")].strip() or inner[inner.rfind("<") + 1 : -1]
    inner = inner.lstrip("!")
    if inner.startswith("~"):
        inner = inner[1:].rsplit(".", 1)[-1]
    return inner


def inline_to_text(text: str) -> str:
    """Reduce inline reST markup to its text: roles, ``literals``, `links <url>`_, **strong**, *emphasis*."""
    text = _ROLE.sub(_role_text, text)
    text = _LITERAL.sub(r"\1", text)
    text = _LINK.sub(lambda m: m.group(1) or (m.group(2) or "")[1:-1], text)
    text = _STRONG.sub(r"\1", text)
    text = _EMPHASIS.sub(r"\1", text)
    text = _FOOTNOTE_REF.sub("", text)
    text = _SUBSTITUTION.sub(r"\1", text)
    return text.replace("\\ ", "").replace("\\", "")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def rst_to_text(source: str) -> str:
    """Plain prose paragraphs (separated by blank lines; list items on their own lines) from reST."""
    paragraphs: list[list[str]] = []
    current: list[str] = []  # lines of the paragraph being read (a list item starts a new line)
    skip_deeper_than: int | None = None  # skip blank lines and lines indented more than this
    skip_to_blank = False  # inside a table or doctest block: skip until a blank line
    literal_after: int | None = None  # the paragraph ended with "::": skip the indented block that follows
    para_indent = 0

    def flush():
        nonlocal current
        if current:
            paragraphs.append(current)
            current = []

    for raw in source.expandtabs(8).splitlines():
        line = raw.rstrip()
        stripped = line.strip()
        if skip_to_blank:
            if stripped:
                continue
            skip_to_blank = False
        if skip_deeper_than is not None:
            if not stripped or _indent(line) > skip_deeper_than:
                continue
            skip_deeper_than = None
        if not stripped:
            flush()
            if literal_after is not None:
                skip_deeper_than, literal_after = literal_after, None
            continue
        indent = _indent(line)
        if stripped.startswith(".. ") or stripped == "..":
            flush()
            m = _DIRECTIVE.match(stripped)
            name = m.group(1) if m else None
            if name in _PROSE_DIRECTIVES:
                if m.group(2) and name in _PROSE_ARGUMENT:
                    current = [m.group(2)]
                    para_indent = indent
            else:
                skip_deeper_than = indent  # comments, labels, code, tables, images, toctrees ...
            continue
        if _ADORNMENT.match(stripped):
            flush()  # the title above stays a paragraph of its own; the adornment goes
            continue
        if _TABLE_BORDER.match(stripped) or stripped.startswith(">>>"):
            flush()
            skip_to_blank = True
            continue
        if _FIELD.match(stripped):
            flush()
            skip_deeper_than = indent
            continue
        if stripped.startswith("|") and stripped.endswith("|") and len(stripped) > 1:
            continue  # a grid-table row without its border in view
        bullet = _BULLET.match(stripped)
        if bullet:
            marker = bullet.group(1)
            item = stripped[bullet.end() :]
            current.append(("- " if marker in "-*+\u2022" else (marker + " ")) + item)
            if len(current) == 1:
                para_indent = indent
        elif current:
            current[-1] += " " + stripped
        else:
            current.append(stripped)
            para_indent = indent
        if current[-1].endswith("::"):
            text = current[-1][:-2].rstrip()
            current[-1] = text + ":" if text and not current[-1][:-2].endswith(" ") else text
            if not current[-1]:
                current.pop()
            literal_after = para_indent
    flush()
    out = []
    for para in paragraphs:
        lines = [" ".join(inline_to_text(line).split()) for line in para]
        text = "\n".join(line for line in lines if line)
        if _is_prose(text):
            out.append(text)
    return "\n\n".join(out)


def _is_prose(text: str) -> bool:
    if not text:
        return False
    letters = sum(c.isalpha() or c.isspace() for c in text)
    return letters >= 0.75 * len(text) and any(c.isalpha() for c in text)
