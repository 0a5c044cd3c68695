"""`bart-pretrain build-data --out data`: the embedded default data, harvested offline-style from the machine's
package registry (README, "The default data"). Writes, atomically and byte-for-byte reproducibly:

    summarization/{train,validation,test}.jsonl   Debian long description -> synopsis pairs
    package_names/{train,validation,test}.jsonl   Debian synopsis -> package name (the same packages and splits)
    corpus/{train,validation}.jsonl                 pretraining documents (docs prose + train descriptions)
    tokenizer/tokenizer.json (+ vocab.json, merges.txt)   byte-level BPE trained on corpus/train
    manifest.json                                   sources, package versions, counts, sha256 of every output

Apt state, downloaded .debs and index files live under ``<out>/.cache`` (private: the system's apt state is
never touched). A second run with the same inputs rewrites nothing; ``--refresh true`` fetches new indexes.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from pathlib import Path

from bart_pretrain.corpus import debian, docs_corpus, fallback
from bart_pretrain.corpus.debian import AptError, Pair, PrivateApt
from bart_pretrain.io import atomic_write_json, atomic_write_jsonl
from bart_pretrain.tokenizer import DEFAULT_VOCAB_SIZE

BUILDER_VERSION = 2  # bump when outputs change for the same inputs (2: package_names/)
CORPUS_VALIDATION = {"validation": 0.02}
MIN_DOC_WORDS = 20
DOC_PACKAGES = (  # (apt-cache search regex, metapackage naming the default one)
    (r"^python3\.[0-9]+-doc$", "python3-doc"),
    (r"^linux-doc-[0-9.]+$", "linux-doc"),
)


class BuildError(RuntimeError):
    """A problem the user can act on; printed without a traceback."""


def log(msg: str) -> None:
    print(msg, flush=True)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------------------------


class AptInputs:
    """Summarization pairs and documentation packages from apt (private state under ``cache``)."""

    kind = "apt"

    def __init__(self, cache: Path, refresh: bool = False, apt_options: tuple[str, ...] = ()):
        self.apt = PrivateApt(cache / "apt", apt_options)
        self.debs_dir = cache / "debs"
        self.refresh = refresh
        self._records: dict[str, dict[str, str]] | None = None
        self._prepared = False

    def prepare(self) -> None:
        if self._prepared:
            return
        if self.refresh or not self.apt.index_files("Packages") or not self.apt.index_files("Translation-en"):
            log(f"apt-get update (private state in {self.apt.root}, the mirrors apt is configured with) ...")
            self.apt.update()
        self.index_files = self.apt.index_files("Packages") + self.apt.index_files("Translation-en")
        self.doc_packages = self._resolve_doc_packages()
        self.debs = {name: self._fetch(name) for name in self.doc_packages}
        self._prepared = True

    def records(self) -> dict[str, dict[str, str]]:
        if self._records is None:
            self._records = debian.newest_records(debian.read_index(p) for p in self.apt.index_files("Packages"))
        return self._records

    def _resolve_doc_packages(self) -> list[str]:
        chosen = []
        records = self.records()
        for regex, meta in DOC_PACKAGES:
            names = [n for n in self.apt.search_names(regex) if n in records]
            if not names:
                raise AptError(f"no package matches {regex} in the configured mirrors (apt-cache search)")
            preferred = [n for n in debian.depends_names(records.get(meta, {})) if n in names]
            chosen.append(preferred[0] if preferred else max(names, key=lambda n: _version_key(n, records)))
        return chosen

    def _fetch(self, name: str) -> Path:
        rec = self.records()[name]
        version, arch, want = rec["Version"], rec.get("Architecture", "all"), rec.get("SHA256")
        path = self.debs_dir / f"{name}_{version.replace(':', '%3a')}_{arch}.deb"
        if path.is_file() and want and sha256_file(path) == want:
            return path  # cached and intact: no download
        log(f"apt-get download {name} {version} ...")
        self.apt.download(name, self.debs_dir)
        if not path.is_file():
            raise AptError(f"apt-get download {name} did not produce {path.name}")
        if want and sha256_file(path) != want:
            path.unlink()
            raise AptError(f"{path.name}: checksum differs from the index's SHA256 (download corrupted?)")
        for old in self.debs_dir.glob(f"{name}_*.deb"):
            if old != path:
                old.unlink()
        return path

    def fingerprint_parts(self) -> dict:
        return {
            "indexes": {p.name: sha256_file(p) for p in self.index_files},
            "packages": {n: sha256_file(p) for n, p in self.debs.items()},
        }

    def pairs(self) -> list[Pair]:
        translations = (debian.read_index(p) for p in self.apt.index_files("Translation-en"))
        return debian.pairs_from_indexes(self.records(), translations)

    def documents(self) -> list[dict[str, str]]:
        docs = []
        for name, path in self.debs.items():
            n = 0
            for rel, source in docs_corpus.rst_sources(path):
                text = docs_corpus.rst_to_text(source)
                if len(text.split()) >= MIN_DOC_WORDS:
                    docs.append({"id": f"{name}/{rel.removesuffix('.rst')}", "text": text})
                    n += 1
            log(f"  {name} {self.records()[name]['Version']}: {n} documents")
        return docs

    def sources(self) -> dict:
        recs = self.records()
        return {
            "kind": "apt",
            "package_indexes": [
                {"file": p.name, "sha256": sha256_file(p), "bytes": p.stat().st_size} for p in self.index_files
            ],
            "documentation_packages": [
                {"package": n, "version": recs[n]["Version"], "sha256": recs[n].get("SHA256")} for n in self.debs
            ],
        }


def _version_key(name: str, records: dict) -> tuple:
    return tuple(int(x) for x in re.findall(r"\d+", name))


class FallbackInputs:
    """Installed packages' descriptions (dpkg status) and the Python standard library's docstrings."""

    kind = "fallback"

    def __init__(self, status: Path = fallback.DPKG_STATUS, stdlib: Path | None = None):
        self.status = Path(status)
        self.stdlib = fallback.stdlib_dir() if stdlib is None else Path(stdlib)
        self._docs: list[dict[str, str]] | None = None

    def prepare(self) -> None:
        if self._docs is not None:
            return
        if not self.status.is_file():
            raise BuildError(f"offline fallback: {self.status} does not exist (not a Debian-like system?)")
        self._docs = fallback.stdlib_documents(self.stdlib)
        n_status = len(debian.packages_from_status(self.status.read_text(encoding="utf-8", errors="replace")))
        mb = sum(len(d["text"].encode()) for d in self._docs) / 1e6
        log(
            f"offline fallback sources: {self.status} ({n_status} described installed packages), "
            f"Python {sys.version.split()[0]} stdlib docstrings in {self.stdlib} "
            f"({len(self._docs)} modules, {mb:.1f} MB)"
        )

    def fingerprint_parts(self) -> dict:
        return {
            "dpkg_status": sha256_file(self.status),
            "stdlib": hashlib.sha256(json.dumps(self._docs, sort_keys=True).encode()).hexdigest(),
        }

    def pairs(self) -> list[Pair]:
        return debian.packages_from_status(self.status.read_text(encoding="utf-8", errors="replace"))

    def documents(self) -> list[dict[str, str]]:
        return list(self._docs)

    def sources(self) -> dict:
        return {
            "kind": "fallback",
            "dpkg_status": {"file": str(self.status), "sha256": sha256_file(self.status)},
            "python_stdlib": {"dir": str(self.stdlib), "python": sys.version.split()[0]},
        }


# ---------------------------------------------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------------------------------------------

SUMMARIZATION_SPLITS = ("train", "validation", "test")
NAMES_METRICS = ("exact_match", "chrf")  # the package-naming task's metrics (configs/finetune/debian_names.yaml)
CORPUS_SPLITS = ("train", "validation")


def output_paths(out: Path) -> list[Path]:
    return [
        *(out / "summarization" / f"{s}.jsonl" for s in SUMMARIZATION_SPLITS),
        *(out / "package_names" / f"{s}.jsonl" for s in SUMMARIZATION_SPLITS),
        *(out / "corpus" / f"{s}.jsonl" for s in CORPUS_SPLITS),
        out / "tokenizer" / "tokenizer.json",
        out / "tokenizer" / "vocab.json",
        out / "tokenizer" / "merges.txt",
    ]


def _up_to_date(out: Path, fingerprint: str) -> dict | None:
    try:
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if manifest.get("inputs_sha256") != fingerprint:
        return None
    for rel, meta in manifest.get("outputs", {}).items():
        path = out / rel
        if not path.is_file() or path.stat().st_size != meta["bytes"] or sha256_file(path) != meta["sha256"]:
            return None
    return manifest


def build(
    out: str | Path,
    inputs: AptInputs | FallbackInputs,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    force: bool = False,
) -> dict:
    """Build everything under ``out`` from ``inputs``; returns the manifest. Skips all work when up to date."""
    from bart_pretrain.io import clean_stale_tmp
    from bart_pretrain.metrics import baseline_predictions, lead, rouge, score
    from bart_pretrain.tokenizer import train_tokenizer

    t0 = time.perf_counter()
    out = Path(out).resolve()
    clean_stale_tmp(out, recursive=True)  # what a killed build's writes left
    inputs.prepare()
    fingerprint = hashlib.sha256(
        json.dumps(
            {"builder": BUILDER_VERSION, "vocab_size": vocab_size, "kind": inputs.kind, **inputs.fingerprint_parts()},
            sort_keys=True,
        ).encode()
    ).hexdigest()
    if not force and (manifest := _up_to_date(out, fingerprint)):
        log(f"{out} is up to date (same inputs, outputs match manifest.json); nothing rebuilt.")
        _print_summary(manifest)
        return manifest

    # Summarization pairs
    stats: dict = {}
    pairs = debian.clean_pairs(inputs.pairs(), stats)
    by_split: dict[str, list[Pair]] = {s: [] for s in SUMMARIZATION_SPLITS}
    for p in pairs:
        by_split[debian.split_of(p.source)].append(p)
    if not by_split["test"] or not by_split["train"]:
        raise BuildError(f"only {len(pairs)} summarization pairs: too few to split ({inputs.kind} source)")
    lead1 = rouge([lead(p.document) for p in by_split["test"]], [p.summary for p in by_split["test"]])
    test_names = [p.name_row() for p in by_split["test"]]
    copy_names = score(
        NAMES_METRICS,
        baseline_predictions("copy", [r["synopsis"] for r in test_names]),
        [r["package"] for r in test_names],
    )

    # Pretraining corpus: documentation prose + descriptions of TRAIN pairs only
    docs = inputs.documents()
    docs += [{"id": f"debian/{p.id}", "text": f"{p.summary}\n\n{p.document}"} for p in by_split["train"]]
    docs.sort(key=lambda d: d["id"])
    corpus: dict[str, list[dict]] = {s: [] for s in CORPUS_SPLITS}
    for d in docs:
        corpus[debian.split_of(d["id"], CORPUS_VALIDATION)].append(d)

    # Tokenizer on corpus/train, with whitespace collapsed as the document encoder sees it
    t_tok = time.perf_counter()
    tok = train_tokenizer((" ".join(d["text"].split()) for d in corpus["train"]), vocab_size)
    t_tok = time.perf_counter() - t_tok

    # Write (each file atomically; the manifest last, so a killed build never looks complete)
    counts = {}
    for split, rows in by_split.items():
        counts[f"summarization/{split}"] = atomic_write_jsonl(
            out / "summarization" / f"{split}.jsonl", (p.row() for p in rows)
        )
        counts[f"package_names/{split}"] = atomic_write_jsonl(
            out / "package_names" / f"{split}.jsonl", (p.name_row() for p in rows)
        )
    for split, rows in corpus.items():
        counts[f"corpus/{split}"] = atomic_write_jsonl(out / "corpus" / f"{split}.jsonl", rows)
    tok.save(out / "tokenizer")
    outputs = {
        p.relative_to(out).as_posix(): {"sha256": sha256_file(p), "bytes": p.stat().st_size} for p in output_paths(out)
    }
    manifest = {
        "builder_version": BUILDER_VERSION,
        "inputs_sha256": fingerprint,
        "sources": inputs.sources(),
        "counts": counts,
        "filtering": stats,
        "corpus_bytes": {s: sum(len(d["text"].encode()) for d in rows) for s, rows in corpus.items()},
        "tokenizer": {"vocab_size": tok.vocab_size, "mask_id": tok.mask_id, "trained_on": "corpus/train"},
        "lead1_test": {k: round(v, 2) for k, v in lead1.items()},
        "package_names_copy_test": {k: round(v, 2) for k, v in copy_names.items()},
        "outputs": outputs,
    }
    atomic_write_json(out / "manifest.json", manifest)
    _print_summary(manifest)
    log(f"built {out} in {time.perf_counter() - t0:.1f} s (tokenizer training {t_tok:.1f} s)")
    return manifest


def _print_summary(manifest: dict) -> None:
    c, f, lead = manifest["counts"], manifest.get("filtering", {}), manifest["lead1_test"]
    n_pairs = sum(v for k, v in c.items() if k.startswith("summarization/"))
    log(
        f"summarization pairs: {n_pairs} (train {c['summarization/train']}, validation "
        f"{c['summarization/validation']}, test {c['summarization/test']}) from "
        f"{f.get('packages_with_description', '?')} described packages"
    )
    if f:
        log(
            "  filtering: {packages_with_description} -> {after_boilerplate_packages} without transitional/dummy/"
            "debug packages -> {after_boilerplate_paragraphs} after dropping {boilerplate_paragraphs} boilerplate "
            "paragraphs -> {after_dedup} after exact/near-duplicate removal".format(**f)
        )
    mb = {k: v / 1e6 for k, v in manifest["corpus_bytes"].items()}
    log(
        f"pretraining corpus: {c['corpus/train']} train documents ({mb['train']:.1f} MB), "
        f"{c['corpus/validation']} validation ({mb['validation']:.1f} MB)"
    )
    log(f"tokenizer: byte-level BPE, vocab_size {manifest['tokenizer']['vocab_size']}")
    log(
        "lead-1 baseline on summarization/test (ROUGE-1/2/L F1): "
        f"{lead['rouge1']:.1f}/{lead['rouge2']:.1f}/{lead['rougeL']:.1f}"
    )
    names = manifest.get("package_names_copy_test")
    if names is not None:
        log(
            f"package names: {c['package_names/test']} test pairs (synopsis -> package); copy baseline (the synopsis "
            f"itself): exact match {names['exact_match']:.1f}%, chrF {names['chrf']:.1f}"
        )
