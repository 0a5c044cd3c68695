"""RSS of a process and of its process tree, from /proc (Linux; no psutil needed): what scripts/measure-corpus.py
samples."""

from __future__ import annotations

import os


def tree_rss(root: int) -> tuple[int, int]:
    """(RSS of ``root``, summed RSS of ``root`` and its descendants), in bytes, from /proc."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/statm") as f:
                rss[int(entry)] = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            continue
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in tree:
                tree.add(child)
                frontier.append(child)
    return rss.get(root, 0), sum(rss.get(p, 0) for p in tree)
