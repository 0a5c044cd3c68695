"""Debian package descriptions as task pairs: summarization (long description -> one-line synopsis) and package
naming (synopsis -> package name, :meth:`Pair.name_row`).

Apt runs with a PRIVATE state (absolute ``Dir::State::Lists`` and ``Dir::Cache`` under the output directory)
so the system's apt state is never touched, against the mirror(s) apt already has configured. Descriptions
come from ``Packages`` (synopsis, ``Description-md5``, ``Source``) joined with ``Translation-en`` (the long
text), then cleaned: Debian description markup to plain text, boilerplate packages and paragraphs removed,
exact and near duplicates removed, split by a stable hash of the SOURCE package.
Format reference: Debian Policy 5.6.13 (Description), apt's ``Translation-en`` index.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

SPLIT_FRACTIONS = {"test": 0.05, "validation": 0.05}  # the rest is train
BOILERPLATE_MIN_SOURCES = 5  # a paragraph found in this many source packages is boilerplate
_NOT_MAIN_SUFFIXES = ("-dev", "-doc", "-data", "-common", "-dbg", "-dbgsym", "-examples", "-tests", "-bin", "-utils")


class AptError(RuntimeError):
    """apt could not provide what was asked (missing, no configured mirror, mirror unreachable)."""


# ---------------------------------------------------------------------------------------------------------------
# Private apt state
# ---------------------------------------------------------------------------------------------------------------


class PrivateApt:
    """apt-get/apt-cache with their lists and caches in ``root`` (absolute), the system's config and mirrors."""

    def __init__(self, root: str | os.PathLike, extra_options: Iterable[str] = ()):
        self.root = Path(root).resolve()
        self.lists = self.root / "lists"
        self.cache = self.root / "cache"
        self.extra_options = list(extra_options)

    @staticmethod
    def available() -> bool:
        return all(shutil.which(tool) for tool in ("apt-get", "apt-cache"))

    def options(self) -> list[str]:
        opts = {
            "Dir::State::Lists": str(self.lists),
            "Dir::Cache": str(self.cache),
            "Dir::Cache::pkgcache": "",  # build the package cache in memory: nothing written outside root
            "Dir::Cache::srcpkgcache": "",
            "Acquire::Languages": "en",
            "Debug::NoLocking": "1",  # our private dirs need no lock, and the system's locks are not ours
            "APT::Sandbox::User": "root" if os.geteuid() == 0 else "",
        }
        out = []
        for key, value in opts.items():
            if key == "APT::Sandbox::User" and not value:
                continue
            out += ["-o", f"{key}={value}"]
        for opt in self.extra_options:
            out += ["-o", opt]
        return out

    def _run(self, tool: str, *args: str, cwd: Path | None = None, timeout: float = 600) -> str:
        cmd = [tool, *self.options(), *args]
        try:
            proc = subprocess.run(
                cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**os.environ, "LC_ALL": "C"}
            )
        except FileNotFoundError:
            raise AptError(f"{tool} is not installed") from None
        except subprocess.TimeoutExpired:
            raise AptError(
                f"`{tool} {' '.join(args)}` took longer than {timeout:.0f} s (mirror unreachable?)"
            ) from None
        if proc.returncode != 0:
            raise AptError(f"`{tool} {' '.join(args)}` failed (exit {proc.returncode}): {_tail(proc.stderr)}")
        return proc.stdout

    def update(self) -> None:
        """``apt-get update`` into the private lists; raises ``AptError`` unless Packages AND Translation-en came."""
        (self.lists / "partial").mkdir(parents=True, exist_ok=True)
        (self.cache / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        cmd = ["apt-get", *self.options(), "update"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "LC_ALL": "C"})
        except FileNotFoundError:
            raise AptError("apt-get is not installed") from None
        except subprocess.TimeoutExpired:
            raise AptError("`apt-get update` took longer than 600 s (mirror unreachable?)") from None
        problems = [line for line in (proc.stderr + proc.stdout).splitlines() if line.startswith(("E:", "W:", "Err"))]
        if proc.returncode != 0 or not self.index_files("Packages") or not self.index_files("Translation-en"):
            detail = "; ".join(problems[-4:]) or _tail(proc.stderr) or "no Packages/Translation-en index was fetched"
            raise AptError(f"`apt-get update` could not fetch the package indexes from the configured mirror: {detail}")

    def index_files(self, kind: str) -> list[Path]:
        """The private lists' ``Packages`` or ``Translation-en`` files (any compression), sorted by name."""
        if not self.lists.is_dir():
            return []
        pattern = re.compile(rf"_{re.escape(kind)}(\.(lz4|gz|xz|bz2|zst|lzma))?$")
        return sorted(p for p in self.lists.iterdir() if p.is_file() and pattern.search(p.name))

    def search_names(self, regex: str) -> list[str]:
        out = self._run("apt-cache", "search", "--names-only", regex)
        return sorted(line.split(" - ", 1)[0].strip() for line in out.splitlines() if line.strip())

    def download(self, package: str, dest: Path) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        self._run("apt-get", "download", package, cwd=dest)


def read_index(path: Path) -> str:
    """Text of an apt index file, decompressed by apt itself (lists may be stored lz4/gz/xz/zst)."""
    helper = "/usr/lib/apt/apt-helper"
    if path.suffix in (".lz4", ".gz", ".xz", ".bz2", ".zst", ".lzma"):
        if not os.access(helper, os.X_OK):
            raise AptError(f"cannot decompress {path.name}: {helper} is missing")
        proc = subprocess.run([helper, "cat-file", str(path)], capture_output=True)
        if proc.returncode != 0:
            raise AptError(f"apt-helper cat-file {path.name} failed: {_tail(proc.stderr.decode(errors='replace'))}")
        data = proc.stdout
    else:
        data = path.read_bytes()
    return data.decode("utf-8", errors="replace")


def _tail(text: str, n: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else "..." + text[-n:]


# ---------------------------------------------------------------------------------------------------------------
# deb822 parsing
# ---------------------------------------------------------------------------------------------------------------


def parse_deb822(text: str, fields: Iterable[str] | None = None) -> Iterator[dict[str, str]]:
    """Paragraphs of a deb822 file (Packages, Translation-en, dpkg status) as dicts; continuation lines are
    joined with ``\\n`` and keep their leading space. Only ``fields`` are kept when given (faster)."""
    wanted = None if fields is None else set(fields)
    for para in re.split(r"\n\s*\n", text):
        record: dict[str, str] = {}
        key = None
        for line in para.split("\n"):
            if not line:
                continue
            if line[0] in " \t":
                if key is not None:
                    record[key] += "\n" + line
                continue
            name, sep, value = line.partition(":")
            if not sep:
                key = None
                continue
            key = name if wanted is None or name in wanted else None
            if key is not None:
                record[key] = value.strip()
        if record:
            yield record


def description_to_text(long_lines: str) -> str:
    """Debian description markup (Policy 5.6.13) to plain text.

    ``" ."`` lines are paragraph breaks; lines with one leading space are wrapped prose (joined with spaces);
    lines with two or more are verbatim (kept on their own line: lists, tables, examples).
    """
    paragraphs: list[list[str]] = [[]]
    for raw in long_lines.split("\n"):
        if not raw.strip():
            continue
        if raw.strip() == ".":
            paragraphs.append([])
            continue
        line = raw[1:] if raw.startswith(" ") else raw
        if line.startswith((" ", "\t")):
            paragraphs[-1].append("\n" + line.strip())  # verbatim line
        elif paragraphs[-1] and not paragraphs[-1][-1].startswith("\n"):
            paragraphs[-1][-1] += " " + line.strip()
        else:
            paragraphs[-1].append(("\n" if paragraphs[-1] else "") + line.strip())
    out = []
    for para in paragraphs:
        text = "".join(para).strip()
        text = re.sub(r"[ \t]+", " ", text)
        if text:
            out.append(text)
    return "\n\n".join(out)


def normalize(text: str) -> str:
    """Lowercase words only: two texts differing in case, punctuation or spacing normalize the same."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


# ---------------------------------------------------------------------------------------------------------------
# Versions (dpkg's ordering; used to pick the newest of several index entries)
# ---------------------------------------------------------------------------------------------------------------


def _order(c: str) -> int:
    if c == "~":
        return -1
    if c.isdigit():
        return 0
    if not c:
        return 0
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _compare_part(a: str, b: str) -> int:
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) else 0
            bc = _order(b[j]) if j < len(b) else 0
            if ac != bc:
                return ac - bc
            i, j = i + 1, j + 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i, j = i + 1, j + 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return first_diff
    return 0


def compare_versions(a: str, b: str) -> int:
    """dpkg's version comparison: negative, zero or positive as ``a`` is older, equal or newer than ``b``."""

    def split(v: str) -> tuple[int, str, str]:
        epoch, _, rest = v.rpartition(":") if ":" in v else ("0", "", v)
        upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "0")
        return int(epoch or 0), upstream, revision

    ea, ua, ra = split(a)
    eb, ub, rb = split(b)
    if ea != eb:
        return ea - eb
    return _compare_part(ua, ub) or _compare_part(ra, rb)


def newest(versions: Iterable[str]) -> str:
    best = None
    for v in versions:
        if best is None or compare_versions(v, best) > 0:
            best = v
    if best is None:
        raise ValueError("newest: no versions")
    return best


# ---------------------------------------------------------------------------------------------------------------
# Pairs
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Pair:
    id: str  # binary package
    source: str  # source package
    document: str  # long description, plain text
    summary: str  # synopsis

    def row(self) -> dict[str, str]:
        return {"id": self.id, "source": self.source, "document": self.document, "summary": self.summary}

    def name_row(self) -> dict[str, str]:
        """The package-naming task's row: the synopsis and the binary package it describes."""
        return {"synopsis": self.summary, "package": self.id}


PACKAGE_FIELDS = ("Package", "Source", "Version", "Architecture", "Description", "Description-md5", "Depends")
PACKAGE_FIELDS += ("Filename", "SHA256")


def newest_records(packages_texts: Iterable[str]) -> dict[str, dict[str, str]]:
    """The newest entry (dpkg version order) of every binary package across several Packages indexes."""
    best: dict[str, dict[str, str]] = {}
    for text in packages_texts:
        for rec in parse_deb822(text, PACKAGE_FIELDS):
            name = rec.get("Package")
            if not name:
                continue
            old = best.get(name)
            if old is None or compare_versions(rec.get("Version", "0"), old.get("Version", "0")) > 0:
                best[name] = rec
    return best


def pairs_from_indexes(records: dict[str, dict[str, str]], translation_texts: Iterable[str]) -> list[Pair]:
    """Join Packages records (see :func:`newest_records`) with Translation-en long descriptions (by md5)."""
    long_by_md5: dict[str, str] = {}
    for text in translation_texts:
        for rec in parse_deb822(text, ("Description-md5", "Description-en")):
            md5, desc = rec.get("Description-md5"), rec.get("Description-en")
            if md5 and desc:
                long_by_md5.setdefault(md5, desc)
    pairs = []
    for name in sorted(records):
        rec = records[name]
        synopsis, _, long_lines = rec.get("Description", "").partition("\n")
        if not long_lines and rec.get("Description-md5") in long_by_md5:
            synopsis_t, _, long_lines = long_by_md5[rec["Description-md5"]].partition("\n")
            synopsis = synopsis or synopsis_t
        pairs.append(_make_pair(name, rec.get("Source", ""), synopsis, long_lines))
    return [p for p in pairs if p is not None]


def depends_names(record: dict[str, str]) -> list[str]:
    """Package names in a Depends field ("a (>= 1), b | c" -> [a, b, c])."""
    names = []
    for alt in re.split(r"[,|]", record.get("Depends", "")):
        name = alt.strip().split(" ", 1)[0].split(":", 1)[0]
        if name:
            names.append(name)
    return names


def packages_from_status(status_text: str) -> list[Pair]:
    """Pairs from a dpkg status file (``/var/lib/dpkg/status``: installed packages, full descriptions inline)."""
    pairs = []
    seen = set()
    for rec in parse_deb822(status_text, ("Package", "Source", "Description", "Status")):
        name = rec.get("Package")
        if not name or name in seen or "installed" not in rec.get("Status", "installed"):
            continue
        seen.add(name)
        synopsis, _, long_lines = rec.get("Description", "").partition("\n")
        pairs.append(_make_pair(name, rec.get("Source", ""), synopsis, long_lines))
    return sorted((p for p in pairs if p is not None), key=lambda p: p.id)


def _make_pair(name: str, source_field: str, synopsis: str, long_lines: str) -> Pair | None:
    source = source_field.split()[0] if source_field.strip() else name  # "Source: foo (1.2-3)" -> foo
    document = description_to_text(long_lines)
    synopsis = " ".join(synopsis.split())
    if not document or not synopsis:
        return None
    return Pair(id=name, source=source, document=document, summary=synopsis)


_BOILERPLATE_SYNOPSIS = re.compile(
    r"\b(transitional|dummy)\b|\bdebug(ging)? symbols\b|\bdebug(ging)? (info|information)\b", re.IGNORECASE
)


def is_boilerplate_package(pair: Pair) -> bool:
    """Transitional/dummy packages and debug-symbol packages: their descriptions are not summaries."""
    return bool(_BOILERPLATE_SYNOPSIS.search(pair.summary)) or pair.id.endswith(("-dbg", "-dbgsym"))


def main_package_rank(pair: Pair) -> tuple:
    """Sort key: the package that best represents a group of near duplicates comes first."""
    name = pair.id
    secondary = name.endswith(_NOT_MAIN_SUFFIXES) or name.startswith(("lib", "python3-", "golang-", "node-", "r-"))
    return (name != pair.source, secondary, len(name), name)


def clean_pairs(pairs: list[Pair], stats: dict | None = None) -> list[Pair]:
    """Drop boilerplate packages, boilerplate paragraphs, then exact and near duplicates. Deterministic."""
    stats = {} if stats is None else stats
    stats["packages_with_description"] = len(pairs)
    pairs = [p for p in pairs if not is_boilerplate_package(p)]
    stats["after_boilerplate_packages"] = len(pairs)

    sources_by_para: dict[str, set[str]] = defaultdict(set)
    for p in pairs:
        for para in p.document.split("\n\n"):
            sources_by_para[normalize(para)].add(p.source)
    common = {k for k, v in sources_by_para.items() if len(v) >= BOILERPLATE_MIN_SOURCES}
    stats["boilerplate_paragraphs"] = len(common)
    cleaned = []
    for p in pairs:
        kept = [para for para in p.document.split("\n\n") if normalize(para) not in common]
        if kept:
            cleaned.append(Pair(p.id, p.source, "\n\n".join(kept), p.summary))
    stats["after_boilerplate_paragraphs"] = len(cleaned)

    groups: dict[str, list[Pair]] = defaultdict(list)
    for p in cleaned:
        groups[normalize(p.document.split("\n\n", 1)[0])].append(p)
    kept_pairs = [min(group, key=main_package_rank) for key, group in groups.items() if key]
    stats["after_dedup"] = len(kept_pairs)
    return sorted(kept_pairs, key=lambda p: p.id)


def split_of(name: str, fractions: dict[str, float] = SPLIT_FRACTIONS) -> str:
    """Stable split of a name: sha256 -> a number in [0, 1); test below 0.05, validation below 0.10."""
    u = int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big") / 2**64
    edge = 0.0
    for split, frac in fractions.items():
        edge += frac
        if u < edge:
            return split
    return "train"
