"""The one reader of local data for every command: files (.txt, .jsonl, .json, .csv, .parquet; all but Parquet also
gzipped), globs, directories and ``datasets`` ``save_to_disk`` directories, in memory (:func:`read_dataset`), streamed
(:func:`stream_dataset`, checked up front by :func:`check_stream_source`) or a few rows (:func:`read_texts`); a
``datasets`` name otherwise. Every problem is a ValueError of one line naming the file and what is allowed.
"""

from __future__ import annotations

import codecs
import glob
import gzip
import io
import os
from collections.abc import Iterator, Mapping
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import datasets

FORMATS = {
    ".txt": "text",
    ".text": "text",
    ".jsonl": "json",
    ".json": "json",
    ".csv": "csv",
    ".parquet": "parquet",
}
"""File suffix -> the ``datasets`` builder reading it."""
GZIP = ".gz"
"""Text, JSON and CSV files may be gzipped (``corpus.jsonl.gz``); ``datasets`` reads them as they are."""
READABLE = (
    ".txt, .text, .jsonl, .json, .csv, .parquet (all but Parquet also gzipped: .txt.gz, .jsonl.gz, .json.gz, "
    ".csv.gz), or a directory written by `datasets`' save_to_disk"
)
SAVED = "saved"
"""The kind of a directory written by ``datasets``' ``save_to_disk`` (a ``Dataset`` or a ``DatasetDict``)."""
BOM = "\ufeff"
SPLITS = ("train", "validation", "test")


def is_saved_dataset(path: str | os.PathLike) -> bool:
    """Is ``path`` a directory written by ``Dataset.save_to_disk`` (``state.json`` + ``dataset_info.json``) or
    ``DatasetDict.save_to_disk`` (``dataset_dict.json``)?"""
    p = str(path)
    return os.path.isdir(p) and (
        (os.path.isfile(os.path.join(p, "state.json")) and os.path.isfile(os.path.join(p, "dataset_info.json")))
        or os.path.isfile(os.path.join(p, "dataset_dict.json"))
    )


def load_saved_dataset(path: str, split: str = "train") -> datasets.Dataset:
    """The ``Dataset`` a ``save_to_disk`` directory holds (memory-mapped, not read into memory); of a ``DatasetDict``,
    its ``split``. Raises ValueError naming the directory when it cannot be read or lacks ``split``."""
    import datasets

    try:
        ds = datasets.load_from_disk(path)
    except Exception as e:  # a damaged directory: name it
        raise ValueError(f"{path}: not a readable `datasets` directory ({type(e).__name__}: {e})") from None
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise ValueError(f"{path}: a saved DatasetDict without a {split!r} split (splits: {sorted(ds)})")
        ds = ds[split]
    return ds


def file_suffix(path: str) -> str:
    """The format suffix of ``path`` in lower case, past a ``.gz``: ``.jsonl`` for ``part-1.JSONL.gz``."""
    root, ext = os.path.splitext(str(path).lower())
    return os.path.splitext(root)[1] if ext == GZIP else ext


def file_format(path: str) -> str | None:
    """The ``datasets`` builder (``text``, ``json``, ``csv``, ``parquet``) reading ``path``, by its suffix; None if
    none does (a gzipped Parquet file is none: Parquet compresses inside)."""
    kind = FORMATS.get(file_suffix(path))
    return None if kind == "parquet" and str(path).lower().endswith(GZIP) else kind


def open_bytes(path: str) -> IO[bytes]:
    """``path`` opened for reading bytes, gunzipped if its name ends in ``.gz``."""
    return gzip.open(path, "rb") if str(path).lower().endswith(GZIP) else open(path, "rb")


def open_text(path: str) -> IO[str]:
    """``path`` opened as UTF-8 text (gunzipped if its name ends in ``.gz``), a byte-order mark at its start dropped."""
    return io.TextIOWrapper(open_bytes(path), encoding="utf-8-sig")


def starts_with_bom(path: str) -> bool:
    """Does the (uncompressed) text of ``path`` start with a UTF-8 byte-order mark?"""
    with open_bytes(path) as f:
        return f.read(len(codecs.BOM_UTF8)) == codecs.BOM_UTF8


def builder_options(paths: list[str], kind: str) -> dict:
    """Keyword arguments of ``datasets.load_dataset(kind, data_files=paths)`` as this package reads local files: a
    ``.txt`` document per blank-line-separated block; a byte-order mark dropped (``utf-8-sig``, only when a file has
    one, so the builder's config and cache stay those of plain UTF-8 otherwise)."""
    options: dict = {"sample_by": "paragraph"} if kind == "text" else {}
    if kind in ("text", "json", "csv") and any(map(starts_with_bom, paths)):
        options["encoding"] = "utf-8-sig"
    return options


def check_file(path: str, kind: str, limit: int | None = None) -> None:
    """Fail early, naming the file, on an empty file, and for text/JSON/CSV on non-UTF-8 bytes or a broken gzip (the
    builders fail deep inside). ``limit``: check only the first that many bytes (a streamed corpus may be huge)."""
    if kind == "parquet":
        if os.path.getsize(path) == 0:
            raise ValueError(f"{path}: the file is empty (no text to train on)")
        return
    decoder = codecs.getincrementaldecoder("utf-8")()
    has_text = False
    offset = 0
    where = " of the uncompressed text" if str(path).lower().endswith(GZIP) else ""
    try:
        with open_bytes(path) as f:
            while (limit is None or offset < limit) and (block := f.read(1 << 20)):
                try:
                    chunk = decoder.decode(block)
                except UnicodeDecodeError as e:
                    raise ValueError(
                        f"{path}: not UTF-8 text (invalid byte 0x{block[e.start]:02x} at byte offset "
                        f"{offset + e.start}{where}); convert it, e.g. `iconv -f latin1 -t utf-8`"
                    ) from None
                has_text = has_text or bool(chunk.lstrip(BOM).strip())
                offset += len(block)
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError; a cut-off .gz ends in EOFError
        raise ValueError(f"{path}: not a readable gzip file ({type(e).__name__}: {e})") from None
    if limit is None:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not UTF-8 text (truncated multi-byte character at the end)") from None
    if not has_text:
        raise ValueError(f"{path}: the file is empty (no text to train on)")


def some(names: list[str], n: int = 3) -> str:
    """The first ``n`` of ``names``, and how many more, for a message."""
    return ", ".join(names[:n]) + (f" (+{len(names) - n} more)" if len(names) > n else "")


def _by_format(files: list[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for f in files:
        kind = SAVED if is_saved_dataset(f) else file_format(f)
        groups.setdefault(kind or "?", []).append(f)
    return groups


def directory_files(directory: str) -> list[str]:
    """Every file under ``directory`` (recursively, sorted by path; names starting with ``.`` skipped), all of one
    format; a ``save_to_disk`` directory under it is one entry (not its files). Raises ValueError naming the
    directory when it holds no file, a file of no readable format, or files of several formats."""
    found = []
    for root, dirs, names in os.walk(directory):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        saved = [d for d in dirs if is_saved_dataset(os.path.join(root, d))]
        found.extend(os.path.join(root, d) for d in saved)
        dirs[:] = [d for d in dirs if d not in saved]
        found.extend(os.path.join(root, name) for name in names if not name.startswith("."))
    found.sort()
    if not found:
        raise ValueError(f"{directory}: the directory holds no file")
    groups = _by_format(found)
    rel = {kind: [os.path.relpath(f, directory) for f in files] for kind, files in groups.items()}
    if "?" in rel:
        raise ValueError(f"{directory}: holds files of no readable format: {some(rel['?'])}; readable: {READABLE}")
    if len(rel) > 1:
        listed = "; ".join(f"{kind}: {some(names, 2)}" for kind, names in sorted(rel.items()))
        raise ValueError(f"{directory}: holds files of several formats ({listed}); keep one format per directory")
    return found


def local_files(source: str | os.PathLike | list) -> tuple[list[str], str]:
    """The files of a local ``source`` (a file, a directory, a glob, or a list of them) and the one ``datasets``
    builder reading them all. A directory stands for the files under it (:func:`directory_files`), except a directory
    written by ``save_to_disk``, which stands for itself (kind :data:`SAVED`, read with :func:`load_saved_dataset`);
    a glob for the files it matches (``**`` recursive), sorted. Raises ValueError naming the path and what is wrong:
    no such file, a pattern matching no file, a file of no readable format, formats mixed."""
    patterns = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    if not patterns:
        raise ValueError("no files given (an empty list)")
    files: list[str] = []
    for pattern in map(str, patterns):
        pattern = os.path.expanduser(pattern)
        if glob.has_magic(pattern):
            matches = [m for m in sorted(glob.glob(pattern, recursive=True)) if os.path.isfile(m)]
            if not matches:
                raise ValueError(f"{pattern}: the pattern matches no file")
            files.extend(matches)
        elif is_saved_dataset(pattern):
            files.append(pattern)
        elif os.path.isdir(pattern):
            files.extend(directory_files(pattern))
        elif os.path.isfile(pattern):
            files.append(pattern)
        else:
            raise ValueError(f"{pattern}: no such file (looked for {os.path.abspath(pattern)})")
    groups = _by_format(files)
    if "?" in groups:
        raise ValueError(f"{groups['?'][0]}: unknown file type; readable: {READABLE}")
    if len(groups) > 1:
        listed = "; ".join(f"{kind}: {some(names, 2)}" for kind, names in sorted(groups.items()))
        raise ValueError(f"mixed file formats ({listed}); read one format at a time")
    return files, next(iter(groups))


def looks_local(source: str | os.PathLike | list) -> bool:
    """Is ``source`` meant as local files (a list, an existing path, a glob, a known suffix, a path with a separator)
    rather than a ``datasets`` name?"""
    if not isinstance(source, (str, os.PathLike)):
        return True
    s = str(source)
    return (
        os.path.exists(s)
        or glob.has_magic(s)
        or file_suffix(s) in FORMATS
        or s.lower().endswith(GZIP)
        or os.sep in s.rstrip(os.sep)
    )


def split_files(directory: str, split: str) -> list[str]:
    """The files of ``split`` in a directory of splits: ``<split>.<suffix>`` (any readable format, gzipped or not),
    else every file under a folder ``<split>/``. Raises ValueError naming what was looked for and what is there."""
    names = [f"{split}{ext}" for ext in FORMATS] + [f"{split}{ext}.gz" for ext in FORMATS if ext != ".parquet"]
    found = [name for name in names if os.path.isfile(os.path.join(directory, name))]
    if len(found) > 1:
        raise ValueError(f"{directory}: holds several {split} files ({', '.join(found)}); keep one")
    if found:
        return [os.path.join(directory, found[0])]
    if os.path.isdir(os.path.join(directory, split)):
        return directory_files(os.path.join(directory, split))
    have = sorted(os.listdir(directory))
    raise ValueError(
        f"{directory}: no {split} split (looked for {split}.<{'|'.join(s.lstrip('.') for s in FORMATS)}>[.gz] and a "
        f"folder {split}/); it holds: {some(have, 10) if have else 'nothing'}"
    )


def _source_files(source: str | os.PathLike | list, split: str | None) -> tuple[list[str], str]:
    """:func:`local_files`; with ``split``, a directory (not a ``save_to_disk`` one) is a directory of splits and
    stands for the files of ``split`` (:func:`split_files`): never the same files for every split."""
    if split is not None and isinstance(source, (str, os.PathLike)):
        s = str(source)
        if os.path.isdir(s) and not is_saved_dataset(s):
            return local_files(split_files(s, split))
    return local_files(source)


def read_dataset(
    source: str | os.PathLike | list,
    columns: Mapping[str, str],
    split: str = "train",
    dataset_config: str | None = None,
    splits_in_directory: bool = False,
) -> datasets.Dataset:
    """Read ``source`` as a ``datasets.Dataset`` whose ``columns`` (name -> the option that names it, for messages)
    all hold strings.

    ``source``: a local file, a directory (every file under it, recursively, sorted, all of one format), a glob or a
    list of them, in the formats of :data:`READABLE` (``.txt``: one document per blank-line-separated block, in the
    column ``text``, renamed to the one column asked for); a UTF-8 byte-order mark is dropped; a ``save_to_disk``
    directory (of a ``DatasetDict``, its ``split``); with ``splits_in_directory``, a directory is one of splits,
    ``<split>.<suffix>`` files or ``<split>/`` folders, and stands for those of ``split``. Anything else is the name
    of a ``datasets`` dataset (hub, when online; ``dataset_config``, ``split``). Problems raise a one-line
    ``ValueError`` naming the file and what is wrong (no such file, unknown suffix, empty or non-UTF-8, formats
    mixed, a missing column with the columns present, a column that is not text).
    """
    import datasets

    if looks_local(source):
        paths, kind = _source_files(source, split if splits_in_directory else None)
        where = some(paths)
        if kind == SAVED:
            parts = [load_saved_dataset(p, split) for p in paths]
            ds = parts[0] if len(parts) == 1 else _concatenate(parts, paths)
        else:
            for p in paths:
                check_file(p, kind)
            try:
                ds = datasets.load_dataset(kind, data_files=paths, split="train", **builder_options(paths, kind))
            except Exception as e:  # the builders' errors are long chains; keep the cause, name the files
                cause = e.__cause__ or e
                raise ValueError(f"could not read {where} as {kind}: {type(cause).__name__}: {cause}") from e
            if kind == "text" and len(columns) == 1 and "text" not in columns:
                ds = ds.rename_column("text", next(iter(columns)))
    else:
        try:
            ds = datasets.load_dataset(str(source), dataset_config, split=split)
        except Exception as e:
            raise ValueError(
                f"{source!r}: not a local file and could not be loaded as a `datasets` dataset (split={split!r}): "
                f"{type(e).__name__}: {e}"
            ) from e
        where = f"dataset {str(source)!r} split {split!r}"
    for column, flag in columns.items():
        check_column(ds.column_names, column, flag, where)
        feature = ds.features[column]
        if getattr(feature, "dtype", None) not in ("string", "large_string"):
            raise ValueError(f"{where}: column {column!r} holds {feature}, not strings ({flag})")
    return ds


def check_column(present: list[str], column: str, flag: str, where: str) -> None:
    """The one message of a missing column: the file, the column, the option naming it (if any), the columns
    present."""
    if column not in present:
        named = f" ({flag})" if flag else ""
        raise ValueError(f"{where}: no column {column!r}{named}; the columns present: {sorted(present)}")


def load_text_dataset(
    source: str | os.PathLike | list, text_column: str = "text", split: str = "train", flag: str = "text_column"
) -> datasets.Dataset:
    """Documents as a ``datasets.Dataset`` with a string column ``text_column``: :func:`read_dataset` of one column."""
    return read_dataset(source, {text_column: flag}, split)


def _concatenate(parts: list[datasets.Dataset], paths: list[str]) -> datasets.Dataset:
    """Several saved datasets as one, in order; their columns must agree."""
    import datasets

    first = parts[0].features
    for path, part in zip(paths[1:], parts[1:], strict=True):
        if part.features != first:
            raise ValueError(f"{path}: columns {part.features} differ from {paths[0]}'s {first}")
    return datasets.concatenate_datasets(parts)


def stream_dataset(source: str | os.PathLike | list, text_column: str = "text", split: str = "train"):
    """``source`` read lazily, in order: a ``datasets`` IterableDataset over local files (``.txt`` rows' column
    renamed to ``text_column``) or a hub name, or the memory-mapped ``Dataset`` of each ``save_to_disk`` directory,
    one after the other (a list). Unchecked: :func:`check_stream_source` checks first."""
    import datasets

    if not looks_local(source):
        return datasets.load_dataset(str(source), split=split, streaming=True)
    paths, kind = local_files(source)
    if kind == SAVED:
        return [load_saved_dataset(p, split) for p in paths]
    stream = datasets.load_dataset(
        kind, data_files=paths, split="train", streaming=True, **builder_options(paths, kind)
    )
    if kind == "text" and text_column != "text":
        stream = stream.rename_column("text", text_column)
    return stream


def iter_rows(source: str | os.PathLike | list, text_column: str = "text", batch_size: int = 1000) -> Iterator[dict]:
    """The rows of :func:`stream_dataset`, in order, read ``batch_size`` at a time."""
    stream = stream_dataset(source, text_column)
    for ds in stream if isinstance(stream, list) else [stream]:
        for batch in ds.iter(batch_size=batch_size):
            columns = list(batch)
            for values in zip(*(batch[c] for c in columns), strict=True):
                yield dict(zip(columns, values, strict=True))


PREFIX_BYTES = 1 << 20
"""A streamed corpus may be huge: :func:`check_stream_source` checks the first MiB of each file."""


def check_stream_source(
    source: str | os.PathLike | list,
    text_column: str = "text",
    flag: str | None = "--data.train_files",
    column_flag: str = "--data.text_column",
) -> None:
    """The checks :func:`read_dataset` makes, for a corpus read as a stream: the local files exist (a directory: the
    files under it, of one format), have a known type and are not empty; text/JSON/CSV files (gunzipped) start with
    UTF-8 (the first MiB); the first row has a string column ``text_column``. A ``datasets`` name only gets the
    first-row check. Messages start with ``flag`` (if any); ``column_flag`` is the option naming the column."""
    try:
        if looks_local(source):
            paths, kind = local_files(source)
            if kind == SAVED:  # memory-mapped: the column's type is known without reading a row
                for p in paths:
                    load_text_dataset(p, text_column, flag=column_flag)
                return
            for p in paths:
                check_file(p, kind, limit=PREFIX_BYTES)
            where = some(paths)
        else:
            where = str(source)
        stream = stream_dataset(source, text_column)
        try:
            first = next(iter(stream), None)
        except Exception as e:  # the builders' errors are long chains: name the files
            cause = e.__cause__ or e
            raise ValueError(f"could not read {where}: {type(cause).__name__}: {cause}") from e
        if first is None:
            raise ValueError(f"{where}: no rows (no text to train on)")
        check_column(list(first), text_column, column_flag, where)
        value = first[text_column]
        if value is not None and not isinstance(value, str):
            raise ValueError(
                f"{where}: column {text_column!r} holds {type(value).__name__} ({value!r:.40}), not strings"
            )
    except ValueError as e:
        if flag is None:
            raise
        raise ValueError(f"{flag}: {e}") from None


def read_texts(source: str | os.PathLike | list, n: int, text_column: str = "text") -> list[str]:
    """The first ``n`` documents of a local corpus (column ``text_column``), read as pretraining streams it, with the
    same checks; only as much of it is read as they need."""
    check_stream_source(source, text_column, flag=None, column_flag="")
    texts = []
    for row in iter_rows(source, text_column, batch_size=n):
        value = row[text_column]
        if isinstance(value, str) and value.strip():
            texts.append(value.lstrip(BOM).strip())
        if len(texts) >= n:
            break
    return texts
