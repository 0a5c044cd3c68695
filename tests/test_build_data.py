"""build-data on tiny fixtures made here (never the network): Debian index parsing, markup, filtering, dedup,
split stability, .deb reading and reST stripping, byte-identical rebuilds, up-to-date skips, the fallback."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from bart_pretrain.commands import build_data
from bart_pretrain.corpus import build, debian, docs_corpus, fallback
from bart_pretrain.corpus.debian import Pair

PACKAGES = """\
Package: foo
Source: foo-src (1.0-1)
Version: 1.0-1
Architecture: amd64
Description: old synopsis of foo
Description-md5: 00000000000000000000000000000000

Package: foo
Source: foo-src (1.0-1)
Version: 1.0-10
Architecture: amd64
Description: frobnicate widgets quickly
Description-md5: aaaa0000000000000000000000000001

Package: bar
Version: 2:0.1~rc1
Architecture: all
Description: bar tool
Description-md5: aaaa0000000000000000000000000002

Package: nolong
Version: 1
Description: no long description anywhere
Description-md5: ffff0000000000000000000000000000
"""

TRANSLATION = """\
Package: foo
Description-md5: aaaa0000000000000000000000000001
Description-en: frobnicate widgets quickly
 Foo frobnicates widgets. It is
 very fast.
 .
 Features:
   - speed
   - fun
 .
 More text here.

Package: bar
Description-md5: aaaa0000000000000000000000000002
Description-en: bar tool
 Bar does things.
"""


def test_parse_deb822_joins_continuation_lines():
    recs = list(debian.parse_deb822(TRANSLATION))
    assert [r["Package"] for r in recs] == ["foo", "bar"]
    assert recs[1]["Description-en"] == "bar tool\n Bar does things."
    only = list(debian.parse_deb822(PACKAGES, ("Package",)))
    assert only[0] == {"Package": "foo"}


def test_description_markup_becomes_plain_text():
    long_lines = " Foo frobnicates widgets. It is\n very fast.\n .\n Features:\n   - speed\n   - fun\n .\n End."
    assert debian.description_to_text(long_lines) == (
        "Foo frobnicates widgets. It is very fast.\n\nFeatures:\n- speed\n- fun\n\nEnd."
    )


def test_pairs_join_packages_and_translation_newest_version_and_source():
    records = debian.newest_records([PACKAGES])
    assert records["foo"]["Version"] == "1.0-10"  # dpkg order, not string order
    pairs = {p.id: p for p in debian.pairs_from_indexes(records, [TRANSLATION])}
    assert set(pairs) == {"foo", "bar"}  # "nolong" has no long description
    assert pairs["foo"].source == "foo-src" and pairs["bar"].source == "bar"
    assert pairs["foo"].summary == "frobnicate widgets quickly"
    assert pairs["foo"].document.startswith("Foo frobnicates widgets. It is very fast.\n\nFeatures:\n- speed")


@pytest.mark.parametrize(
    ("a", "b", "sign"),
    [("1.0-10", "1.0-9", 1), ("1.0~rc1", "1.0", -1), ("2:0.1", "1:9.9", 1), ("1.0", "1.0-0", 0), ("1.0a", "1.0", 1)],
)
def test_compare_versions_follows_dpkg(a, b, sign):
    result = debian.compare_versions(a, b)
    assert (result > 0) - (result < 0) == sign


def test_boilerplate_packages_and_paragraphs_and_near_duplicates_are_removed():
    shared = "This package is part of the Big Desktop project, which makes desktops."
    pairs = [
        Pair(f"app{i}", f"src{i}", f"App {i} edits files number {i}.\n\n{shared}", f"editor {i}") for i in range(5)
    ]
    pairs += [
        Pair("gizmo", "gizmo", "Gizmo measures things. Precisely.", "measuring tool"),
        Pair("gizmo-data", "gizmo", "Gizmo measures  things, precisely!\n\nThis has the data.", "data for gizmo"),
        Pair("libgizmo-dev", "gizmo", "Gizmo measures things. Precisely.", "gizmo headers"),
        Pair("old-thing", "old", "Old thing is gone.", "transitional package for new-thing"),
        Pair("thing-dbgsym", "thing", "Symbols for thing.", "symbols for thing"),
        Pair("dummy-x", "dx", "Empty.", "dummy package"),
        Pair("only-shared", "src9", shared, "nothing of its own"),
    ]
    stats = {}
    kept = {p.id: p for p in debian.clean_pairs(pairs, stats)}
    assert set(kept) == {"app0", "app1", "app2", "app3", "app4", "gizmo"}
    assert kept["app3"].document == "App 3 edits files number 3."  # the shared paragraph is gone
    assert stats["boilerplate_paragraphs"] == 1
    assert stats["after_boilerplate_packages"] == len(pairs) - 3


def test_split_by_source_is_stable_and_close_to_fractions():
    # Pinned values: a package's split must never change between versions of the builder.
    assert [debian.split_of(n) for n in ("p0", "p7", "p1", "bash")] == ["validation", "test", "train", "train"]
    counts = Counter(debian.split_of(f"package-{i}") for i in range(4000))
    assert 150 <= counts["test"] <= 250 and 150 <= counts["validation"] <= 250


# -- .deb and reST ----------------------------------------------------------------------------------------------


def _tar_xz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_deb(path: Path, files: dict[str, bytes]) -> Path:
    """A minimal .deb (ar archive: debian-binary, control.tar.xz, data.tar.xz), as dpkg-deb would lay it out."""
    members = [
        ("debian-binary", b"2.0\n"),
        ("control.tar.xz", _tar_xz({"./control": b"Package: tiny-doc\nVersion: 1\n"})),
        ("data.tar.xz", _tar_xz(files)),
    ]
    out = bytearray(b"!<arch>\n")
    for name, data in members:
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n".encode()
        out += data + (b"\n" if len(data) % 2 else b"")
    path.write_bytes(bytes(out))
    return path


RST = """\
.. _intro-label:

*****************
The Tiny Project
*****************

The :func:`~tiny.frob` function frobs ``widgets`` quickly; see `the site <https://example.org>`_.
It is **very** fast.

.. note::
   Frobbing is *safe*.

.. code-block:: python

   frob(1)

An example::

   >>> frob(2)

=====  =====
a      b
=====  =====

:param x: a field that goes
"""


def test_rst_to_text_keeps_prose_and_drops_code_tables_and_markup():
    assert docs_corpus.rst_to_text(RST) == (
        "The Tiny Project\n\n"
        "The frob function frobs widgets quickly; see the site. It is very fast.\n\n"
        "Frobbing is safe.\n\n"
        "An example:"
    )


def test_rst_sources_are_read_from_a_deb_without_installing(tmp_path):
    deb = make_deb(
        tmp_path / "tiny-doc_1_all.deb",
        {
            "./usr/share/doc/tiny/html/_sources/intro.rst.txt": RST.encode(),
            "./usr/share/doc/tiny/html/_sources/translations/zh/intro.rst.txt": "中文".encode(),
            "./usr/share/doc/tiny/html/index.html": b"<html></html>",
        },
    )
    assert [name for name, _ in docs_corpus.rst_sources(deb)] == ["intro.rst"]
    (tmp_path / "bad.deb").write_bytes(b"not an archive")
    with pytest.raises(ValueError, match="not a .deb"):
        list(docs_corpus.rst_sources(tmp_path / "bad.deb"))


# -- whole builds -----------------------------------------------------------------------------------------------


class FakeInputs:
    """What AptInputs provides, from in-memory fixtures."""

    kind = "fake"

    def __init__(self, n_packages: int = 120):
        words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho".split()
        self._pairs = [
            Pair(
                f"p{i}",
                f"p{i}",
                f"P{i} handles {words[i % 17]} and {words[(i * 7) % 17]} files. It runs fast.\n\nIt has {i} knobs.",
                f"{words[i % 17]} tool {i}",
            )
            for i in range(n_packages)
        ]
        self._docs = [
            {"id": f"tiny-doc/page{i}", "text": f"Page {i} explains {words[i % 17]}. " * 20} for i in range(30)
        ]

    def prepare(self):
        pass

    def fingerprint_parts(self):
        return {"pairs": len(self._pairs), "docs": len(self._docs)}

    def pairs(self):
        return list(self._pairs)

    def documents(self):
        return list(self._docs)

    def sources(self):
        return {"kind": "fake"}


def _read_all(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_build_is_byte_identical_and_skips_when_up_to_date(tmp_path, capsys):
    manifest = build.build(tmp_path / "a", FakeInputs(), vocab_size=300)
    build.build(tmp_path / "b", FakeInputs(), vocab_size=300)
    first = _read_all(tmp_path / "a")
    assert first == _read_all(tmp_path / "b")
    assert set(first) == {"manifest.json", *manifest["outputs"]}
    for rel, meta in manifest["outputs"].items():
        assert hashlib.sha256(first[rel]).hexdigest() == meta["sha256"]

    rows = [json.loads(line) for line in first["summarization/test.jsonl"].decode().splitlines()]
    assert rows and set(rows[0]) == {"id", "source", "document", "summary"}
    assert all(debian.split_of(r["source"]) == "test" for r in rows)
    names = [json.loads(line) for line in first["package_names/test.jsonl"].decode().splitlines()]
    assert names == [{"synopsis": r["summary"], "package": r["id"]} for r in rows]  # the same packages, same split
    assert set(manifest["package_names_copy_test"]) == {"exact_match", "chrf"}
    corpus_ids = {
        json.loads(line)["id"] for f in ("train", "validation") for line in first[f"corpus/{f}.jsonl"].splitlines()
    }
    held_out = {
        r["id"] for s in ("validation", "test") for r in map(json.loads, first[f"summarization/{s}.jsonl"].splitlines())
    }
    assert not {f"debian/{p}" for p in held_out} & corpus_ids  # no held-out description leaks into pretraining
    assert any(i.startswith("tiny-doc/") for i in corpus_ids)
    assert manifest["tokenizer"]["vocab_size"] <= 300 and set(manifest["lead1_test"]) == {"rouge1", "rouge2", "rougeL"}

    capsys.readouterr()
    mtime = (tmp_path / "a" / "corpus" / "train.jsonl").stat().st_mtime_ns
    build.build(tmp_path / "a", FakeInputs(), vocab_size=300)
    assert "up to date" in capsys.readouterr().out
    assert (tmp_path / "a" / "corpus" / "train.jsonl").stat().st_mtime_ns == mtime
    (tmp_path / "a" / "corpus" / "train.jsonl").write_text("tampered\n")
    build.build(tmp_path / "a", FakeInputs(), vocab_size=300)
    assert _read_all(tmp_path / "a") == first  # a damaged output is rebuilt


def test_too_few_pairs_fails_cleanly_without_writing(tmp_path):
    with pytest.raises(build.BuildError, match="too few"):
        build.build(tmp_path / "out", FakeInputs(n_packages=2), vocab_size=300)
    assert not (tmp_path / "out" / "manifest.json").exists()


STATUS = "".join(
    f"Package: pkg{i}\nStatus: install ok installed\nSource: src{i}\nVersion: 1.{i}\n"
    f"Description: package number {i} synopsis\n Package {i} does useful thing {i}. It is reliable.\n .\n"
    f" More about {i}.\n\n"
    for i in range(150)
)


_REAL_FALLBACK = build.FallbackInputs  # tests below monkeypatch the name in `build`


def _tiny_fallback(tmp_path: Path) -> build.FallbackInputs:
    (tmp_path / "status").write_text(STATUS)
    lib = tmp_path / "stdlib"
    (lib / "pkg").mkdir(parents=True)
    (lib / "pkg" / "mod.py").write_text(
        '"""A module docstring with enough words to count as a document of prose here.\n\n'
        '>>> doctest()\n"""\n\ndef f():\n    """Function docstring: it explains what f does in some words."""\n'
    )
    (lib / "test").mkdir()
    (lib / "test" / "test_x.py").write_text('"""Tests are skipped even with a long docstring of many words."""\n')
    return _REAL_FALLBACK(status=tmp_path / "status", stdlib=lib)


def test_fallback_documents_come_from_stdlib_docstrings_without_doctests(tmp_path):
    docs = fallback.stdlib_documents(_tiny_fallback(tmp_path).stdlib, min_words=5)
    assert [d["id"] for d in docs] == ["python-stdlib/pkg/mod.py"]
    assert ">>>" not in docs[0]["text"] and "explains what f does" in docs[0]["text"]


def test_unreachable_mirror_falls_back_with_a_clear_message(tmp_path, monkeypatch, capsys):
    if not debian.PrivateApt.available():
        pytest.skip("apt is not installed")
    (tmp_path / "sources.list").write_text("deb [trusted=yes] http://127.0.0.1:9/debian bookworm main\n")
    (tmp_path / "parts").mkdir()
    options = (
        f"Dir::Etc::sourcelist={tmp_path / 'sources.list'}",
        f"Dir::Etc::sourceparts={tmp_path / 'parts'}",
        "Acquire::Retries=0",
    )
    real_apt_inputs = build.AptInputs
    monkeypatch.setattr(build, "AptInputs", lambda cache, refresh: real_apt_inputs(cache, refresh, options))
    monkeypatch.setattr(build, "FallbackInputs", lambda: _tiny_fallback(tmp_path))
    assert build_data.main(["--out", str(tmp_path / "data"), "--vocab_size", "300"]) == 0
    out = capsys.readouterr().out
    assert "apt failed" in out and "Could not connect" in out and "OFFLINE FALLBACK" in out
    assert "150 described installed packages" in out
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert manifest["sources"]["kind"] == "fallback" and manifest["counts"]["summarization/test"] > 0


def test_offline_fallback_without_dpkg_status_is_an_error_not_a_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(build, "FallbackInputs", lambda: _REAL_FALLBACK(status=tmp_path / "missing"))
    assert build_data.main(["--out", str(tmp_path / "data"), "--offline_fallback", "true"]) == 1
    err = capsys.readouterr().err
    assert "error: offline fallback:" in err and "missing does not exist" in err and "Traceback" not in err
    assert not (tmp_path / "data" / "manifest.json").exists()
