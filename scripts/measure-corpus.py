#!/usr/bin/env python3
"""Measure bart-pretrain on a large generated corpus (README "Large corpora"): generate it with
`bart-pretrain build-data --scale-corpus`, then time and measure, each in a process of its own:

- tokenization throughput of a subset of the files, with 1 and 2 processes (``tokenize_dataset``'s ``num_proc``);
- start-up to the first training step of `bart-pretrain pretrain` on the whole corpus, in memory (cold cache:
  reading + tokenizing; then warm: the cache read back) and streamed (``--data.streaming true``);
- peak RSS of each run (the main process, and the sum over its process tree, sampled every 0.2 s), and of a streamed
  run of many steps beside one of a single step (memory must not grow with the data read);
- the size of the ``datasets`` cache the in-memory runs wrote.

Usage (from the repository, with the default data built): ``python scripts/measure-corpus.py --out /tmp/big``; it
deletes the corpus and the cache at the end unless ``--keep``. Results: a markdown table on stdout, JSON in
``--results``. The machine's load changes the times, not the memory or the cache size.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from measure_rss import tree_rss

REPO = Path(__file__).resolve().parent.parent

TOKENIZE = """
import sys, time, datasets
from bart_pretrain.data.documents import load_text_dataset, tokenize_dataset
from bart_pretrain.tokenizer import Tokenizer
datasets.disable_progress_bars()
files, num_proc = sys.argv[1].split(","), int(sys.argv[2])
ds = load_text_dataset(files)
ds = ds.select_columns(["text"])
mb = sum(len(t.encode()) for t in ds["text"]) / 1e6
start = time.perf_counter()
tokenize_dataset(ds, Tokenizer.from_file("data/tokenizer/tokenizer.json"), 64, num_proc=num_proc)
print(f"RESULT {mb} {time.perf_counter() - start}")
"""

# The streamed training data alone (tokenize, bucket, corrupt in a worker; no model), read through ``mb`` MB of the
# corpus: the RSS of this process tree after each tenth of it, to see whether memory grows with the data read.
STREAM = """
import os, sys, time, datasets
sys.path.insert(0, "scripts")
from measure_rss import tree_rss
from bart_pretrain.data.pretrain_module import PretrainDataModule
datasets.disable_progress_bars()
files, mb = sys.argv[1], float(sys.argv[2])
dm = PretrainDataModule(train_files=files, val_files=None, max_length=64, max_tokens=2048, streaming=True,
                        num_workers=1)  # the default noise recipe: bart_large
dm.setup("fit")
docs_per_mb = float(sys.argv[3])
marks, start = [mb * k / 10 for k in range(1, 11)], time.perf_counter()
for batch in dm.train_dataloader():
    read = (batch["position"][0] + 1) * dm.buffer_size / docs_per_mb
    while marks and read >= marks[0]:
        main, tree = tree_rss(os.getpid())
        print(f"RSS {marks.pop(0):.1f} {main} {tree} {time.perf_counter() - start:.1f}", flush=True)
    if not marks:
        break
"""


def run(name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> dict:
    """Run ``argv``, sampling its memory; its output goes to ``<log_dir>/<name>.log``. Stops on a non-zero exit."""
    peak_main = peak_tree = 0
    log = open(log_dir / f"{name}.log", "w")
    print(f"[{name}] {' '.join(argv)}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env}, cwd=REPO)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_main, peak_tree
        while not done.is_set():
            main, tree = tree_rss(proc.pid)
            peak_main, peak_tree = max(peak_main, main), max(peak_tree, tree)
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = proc.wait()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    log.close()
    if code != 0:
        raise SystemExit(f"[{name}] exit status {code}; see {log_dir / f'{name}.log'}")
    print(f"[{name}] {wall:.1f} s, peak RSS {peak_main / 2**20:.0f} MiB (tree {peak_tree / 2**20:.0f} MiB)",
          file=sys.stderr, flush=True)  # fmt: skip
    return {"wall_s": round(wall, 1), "peak_rss_mib": round(peak_main / 2**20), "peak_tree_rss_mib":
            round(peak_tree / 2**20), "log": str(log_dir / f"{name}.log")}  # fmt: skip


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/big"), help="where the corpus goes (default /tmp/big)")
    parser.add_argument("--size", default="1GB", help="corpus size (default 1GB)")
    parser.add_argument("--files", type=int, default=64, help="corpus files (default 64)")
    parser.add_argument("--subset-files", type=int, default=4, help="files tokenized for the throughput (default 4)")
    parser.add_argument("--stream-steps", type=int, default=200, help="steps of the long streamed run (default 200)")
    parser.add_argument("--stream-mb", type=float, default=50, help="MB the streamed data alone reads (default 50)")
    parser.add_argument("--results", type=Path, default=Path("runs/measure-corpus.json"), help="the JSON results")
    parser.add_argument("--keep", action="store_true", help="keep the corpus and the cache")
    args = parser.parse_args()
    python = sys.executable
    cache = Path(f"{args.out}-cache")
    runs = Path(f"{args.out}-runs")
    logs = Path(f"{args.out}-logs")
    for d in (cache, runs, logs):
        shutil.rmtree(d, ignore_errors=True)
    logs.mkdir(parents=True)
    env = {"HF_DATASETS_CACHE": str(cache), "PYTHONPATH": str(REPO)}
    cli = [python, "-m", "bart_pretrain.cli"]
    results: dict = {"command": " ".join([sys.executable, *sys.argv]), "cores": os.cpu_count(),
                     "load_average_at_start": os.getloadavg()}  # fmt: skip

    results["generate"] = run("generate", [*cli, "build-data", "--scale-corpus", args.size, "--out", str(args.out),
                                           "--scale-files", str(args.files), "--force"], env, logs)  # fmt: skip
    corpus_bytes = du(args.out)
    results["corpus_bytes"] = corpus_bytes

    subset = sorted(str(p) for p in args.out.glob("part-*.jsonl"))[: args.subset_files]
    # The tokenizers library encodes a batch on all cores by itself, except in forked processes (num_proc > 1), where
    # it turns that off: the per-core rate is measured with it off throughout.
    for procs, threads in ((1, "true"), (1, "false"), (2, "false")):
        name = f"tokenize_num_proc_{procs}" + ("_rust_threads" if threads == "true" else "")
        sub_env = {**env, "HF_DATASETS_CACHE": str(cache / name), "TOKENIZERS_PARALLELISM": threads}
        r = run(name, [python, "-c", TOKENIZE, ",".join(subset), str(procs)], sub_env, logs)
        mb, seconds = map(float, next(x for x in Path(r["log"]).read_text().splitlines() if x.startswith("RESULT"))
                          .split()[1:])  # fmt: skip
        r.update(mb=round(mb, 1), tokenize_s=round(seconds, 1), mb_per_s=round(mb / seconds, 2))
        results[name] = r
        shutil.rmtree(cache / name, ignore_errors=True)

    pretrain = [*cli, "pretrain", "-c", "configs/pretrain/tiny.yaml", "--data.train_files", str(args.out),
                "--data.val_files", "null", "--model.compile", "false", "--trainer.precision", "32-true",
                "--trainer.max_time", "null", "--torch_threads", "1", "--report", "false",
                "--data.noise_schedule", "null"]  # fmt: skip
    one = ["--trainer.max_steps", "1"]
    memory = ["--data.tokenize_num_proc", "2"]
    for name in ("in_memory_cold", "in_memory_warm"):  # the second reads the cache the first wrote
        results[name] = run(name, [*pretrain, *one, *memory, "--run_dir", f"{runs}/{name}"], env, logs)
        results.setdefault("cache_bytes", du(cache))
    stream = [*pretrain, "--data.streaming", "true"]
    results["streaming_1_step"] = run("streaming_1_step", [*stream, *one, "--run_dir", f"{runs}/s1"], env, logs)
    steps = ["--trainer.max_steps", str(args.stream_steps), "--checkpoint_every", str(args.stream_steps)]
    results[f"streaming_{args.stream_steps}_steps"] = run(
        f"streaming_{args.stream_steps}_steps", [*stream, *steps, "--run_dir", f"{runs}/sN"], env, logs
    )
    manifest = json.loads((args.out / ".manifest.json").read_text())
    r = run("stream_pipeline", [python, "-c", STREAM, str(args.out), str(args.stream_mb),
                                str(manifest["documents"] / (manifest["bytes"] / 1e6))], env, logs)  # fmt: skip
    r["rss_by_mb_read"] = [
        [float(x.split()[1]), round(int(x.split()[2]) / 2**20), round(int(x.split()[3]) / 2**20), float(x.split()[4])]
        for x in Path(r["log"]).read_text().splitlines()
        if x.startswith("RSS ")
    ]
    results["stream_pipeline"] = r
    results["load_average_at_end"] = os.getloadavg()

    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    names = ("tokenize_num_proc_1_rust_threads", "tokenize_num_proc_1", "tokenize_num_proc_2")
    t0, t1, t2 = (results[k] for k in names)
    print(f"corpus: {corpus_bytes / 1e6:,.1f} MB in {args.files} files, generated in {results['generate']['wall_s']} s")
    print(
        f"tokenization ({t1['mb']} MB): {t1['mb_per_s']} MB/s with 1 process, {t2['mb_per_s']} MB/s with 2 "
        f"(TOKENIZERS_PARALLELISM=false); {t0['mb_per_s']} MB/s with 1 process and the library's threads"
    )
    print(f"datasets cache after the in-memory runs: {results['cache_bytes'] / 1e6:,.1f} MB\n")
    print("| run | wall (s) | peak RSS main (MiB) | peak RSS tree (MiB) |\n|---|---:|---:|---:|")
    for key in ("in_memory_cold", "in_memory_warm", "streaming_1_step", f"streaming_{args.stream_steps}_steps"):
        r = results[key]
        print(f"| {key} | {r['wall_s']} | {r['peak_rss_mib']} | {r['peak_tree_rss_mib']} |")
    print("\nstreamed data alone: MB read -> RSS main / tree (MiB), seconds")
    for mb, main, tree, seconds in results["stream_pipeline"]["rss_by_mb_read"]:
        print(f"  {mb:6.1f} MB -> {main} / {tree} MiB, {seconds} s")
    if not args.keep:
        for d in (args.out, cache, runs):
            shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
