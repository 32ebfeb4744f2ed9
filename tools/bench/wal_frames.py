#!/usr/bin/env python3
"""wal_frames.py — what a SQLite journal's commits write: frames (pages) a commit, and which
pages, read from a copy of the WAL (docs/DURABILITY.md §10 "Session 16").

    cp DATA/journal.db-wal /tmp/j.wal; cp DATA/journal.db /tmp/j.db   # while musterd runs
    python3 tools/bench/wal_frames.py /tmp/j.wal /tmp/j.db

Reads the frames of the WAL's current generation (salts of its header) up to the last commit
frame; the database copy only names the tables' root pages. For each leaf page of a table it
counts the rows the frame holds and whether any of them is newer than every row written before
in this WAL (a page of new rows at the table's right edge) or not (a page rewritten for rows
already there: an Acked's DELETE, a Finished's UPDATE). Owns nothing; never writes a file.
"""
import collections
import sqlite3
import struct
import sys


def varint(b, i):
    v = 0
    for j in range(9):
        c = b[i + j]
        if j == 8:
            return (v << 8) | c, i + 9
        v = (v << 7) | (c & 0x7F)
        if not c & 0x80:
            return v, i + j + 1
    raise ValueError("varint")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    wal = open(sys.argv[1], "rb").read()
    _magic, _ver, psz, _ckpt, salt1, salt2, _c1, _c2 = struct.unpack(">8I", wal[:32])
    roots = {}
    if len(sys.argv) > 2:
        con = sqlite3.connect(f"file:{sys.argv[2]}?mode=ro&immutable=1", uri=True)
        roots = {root: name for name, root in con.execute("SELECT name, rootpage FROM sqlite_master WHERE rootpage > 0")}
    commits, cur, off = [], [], 32
    while off + 24 + psz <= len(wal):
        pg, dbsize, s1, s2 = struct.unpack(">4I", wal[off:off + 16])
        if (s1, s2) != (salt1, salt2):
            break
        cur.append((pg, wal[off + 24:off + 24 + psz]))
        if dbsize:  # a commit frame ends a transaction
            commits.append(cur)
            cur = []
        off += 24 + psz
    if not commits:
        sys.exit("no complete commit in this WAL")
    kinds = collections.Counter()
    new_rows = 0
    newest = 0
    frames = sorted(len(c) for c in commits)
    for c in commits:
        top = newest
        for pg, data in c:
            kind = data[100] if pg == 1 else data[0]
            name = {13: "table leaf", 5: "table interior", 10: "index leaf", 2: "index interior"}.get(kind, "other (freelist)")
            if pg == 1:
                kinds["page 1"] += 1
                continue
            if pg in roots:
                name += f" (root of {roots[pg]})"
            if kind == 13:
                ncell = struct.unpack(">H", data[3:5])[0]
                rowids = []
                for k in range(ncell):
                    p = struct.unpack(">H", data[8 + 2 * k:10 + 2 * k])[0]
                    _len, q = varint(data, p)
                    rowid, _ = varint(data, q)
                    rowids.append(rowid)
                if rowids and max(rowids) > newest:
                    name += ": new rows"
                    new_rows += sum(1 for r in rowids if r > newest)
                    top = max(top, max(rowids))
                elif rowids:
                    name += ": rows written before"
                else:
                    name += ": empty"
            kinds[name] += 1
        newest = top
    n = len(commits)
    print(f"page size {psz}; {n} commits; frames a commit: p50 {frames[n // 2]}, mean {sum(frames) / n:.1f}; "
          f"new rows a commit (after the first): ~{new_rows / n:.0f}")
    for k, v in kinds.most_common():
        print(f"  {k}: {v / n:.2f} a commit")


if __name__ == "__main__":
    main()
