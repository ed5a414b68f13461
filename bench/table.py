#!/usr/bin/env python3
"""bench/table.py: turns s3bench JSON lines into the side-by-side table (issue 6).

Owns aggregation only: medians over rounds per (server, checksum mode, metric),
each peer's ratio to Vaultgate, and Vaultgate as a fraction of the unencrypted
ceiling. Standard library only. Usage: table.py RESULTS.jsonl [BASELINE]
"""

import json
import statistics
import sys
from collections import defaultdict

# (label, phase, field, unit, higher_is_better)
ROWS = [
    ("single PUT, MB/s", "put", "mb_s", "MB/s", True),
    ("single PUT server CPU-s per GiB", "put", "server_cpu_s_per_gib", "s", False),
    ("multipart PUT, MB/s", "mpput", "mb_s", "MB/s", True),
    ("multipart PUT server CPU-s per GiB", "mpput", "server_cpu_s_per_gib", "s", False),
    ("GET whole object (SHA-256 checked), MB/s", "get", "mb_s", "MB/s", True),
    ("GET server CPU-s per GiB", "get", "server_cpu_s_per_gib", "s", False),
    ("range GET p50, ms", "range", "p50_ms", "ms", False),
    ("range GET p99, ms", "range", "p99_ms", "ms", False),
    ("small PUT c1, ops/s", "put4k_c1", "ops_s", "ops/s", True),
    ("small PUT c16, ops/s", "put4k_c16", "ops_s", "ops/s", True),
    ("small GET c1, ops/s", "get4k_c1", "ops_s", "ops/s", True),
    ("small GET c16, ops/s", "get4k_c16", "ops_s", "ops/s", True),
    ("small PUT c1, server CPU ms per op", "put4k_c1", "server_cpu_ms_per_op", "ms", False),
    ("small GET c1, server CPU ms per op", "get4k_c1", "server_cpu_ms_per_op", "ms", False),
    ("small PUT c1, server context switches per op", "put4k_c1", "server_ctx_switches_per_op", "", False),
    ("small GET c1, server context switches per op", "get4k_c1", "server_ctx_switches_per_op", "", False),
    ("LIST whole bucket, ms", "list", "list_ms", "ms", False),
    ("concurrent GETs aggregate, MB/s", "cget", "mb_s", "MB/s", True),
    ("concurrent GETs server CPU-s per GiB", "cget", "server_cpu_s_per_gib", "s", False),
    ("server peak RSS during concurrent GETs, MiB", "cget", "rss_peak_mib", "MiB", False),
    ("server peak RSS over all phases, MiB", "*", "rss_peak_mib", "MiB", False),
]

# the growth phase's rows, per step N (phase growth_N): (label, field, higher_is_better)
GROWTH = [
    ("PUT c16, ops/s", "put_ops_s", True),
    ("GET c16, ops/s", "get_ops_s", True),
    ("GET c16 of the same keys again, ops/s", "get_again_ops_s", True),
    ("GET c16: server disk reads, MiB", "server_disk_read_mib", False),
    ("GET c16 again: server disk reads, MiB", "get_again_disk_read_mib", False),
    ("first LIST page (1,000 keys), ms", "list_first_ms", False),
    ("LIST page from a random key, ms", "list_mid_ms", False),
    ("server RSS, MiB", "rss_mib", False),
    ("fill (16 clients), PUTs/s", "fill_ops_s", True),
]

ORDER = ["vaultgate", "vaultgate-pg", "vaultgate-pg3", "vaultgate-base", "rclone-crypt", "rclone-plain", "seaweedfs", "ceiling"]


def fmt(v):
    if v is None:
        return "–"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def main():
    if len(sys.argv) < 2:
        print("usage: table.py RESULTS.jsonl [BASELINE]", file=sys.stderr)
        return 2
    base = sys.argv[2] if len(sys.argv) > 2 else "vaultgate"
    vals = defaultdict(list)  # (server, mode, phase, field) -> [values per round]
    peak = defaultdict(lambda: defaultdict(float))  # (server, mode) -> round -> max rss
    failures = defaultdict(lambda: defaultdict(list))  # (server, mode) -> "phase: error" -> [rounds]
    errors = defaultdict(int)
    corrupt = set()  # (server, mode) that returned bytes other than those PUT
    rounds = set()
    with open(sys.argv[1], encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            r = json.loads(line)
            key = (r.get("server", "?"), r.get("mode", "?"))
            rounds.add(r.get("round"))
            if not r.get("ok") and "differs" in str(r.get("error", "")):
                corrupt.add(key)
            if not r.get("ok"):
                failures[key][f'{r.get("phase")}: {r.get("error", "")[:200]}'].append(r.get("round"))
                continue
            errors[key] += int(r.get("errors", 0) or 0)
            if r.get("errors"):
                failures[key][f'{r.get("phase")}: failed ops, e.g. {r.get("first_error", "")[:200]}'].append(
                    f'{r.get("round")} ({r["errors"]})'
                )
            for k, v in r.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    vals[key + (r["phase"], k)].append(float(v))
            if isinstance(r.get("rss_peak_mib"), (int, float)):
                rnd = r.get("round")
                peak[key][rnd] = max(peak[key][rnd], float(r["rss_peak_mib"]))
    for key, per_round in peak.items():
        vals[key + ("*", "rss_peak_mib")] = list(per_round.values())

    servers = sorted({k[0] for k in vals} | {k[0] for k in failures},
                     key=lambda s: (ORDER.index(s) if s in ORDER else 99, s))
    modes = sorted({k[1] for k in vals} | {k[1] for k in failures}, key=lambda m: (m != "default", m))
    nr = len([r for r in rounds if r is not None])
    steps = sorted({int(k[2][7:]) for k in vals if k[2].startswith("growth_") and k[2][7:].isdigit()})
    rows = ROWS + [
        (f"{n:,} objects: {label}", f"growth_{n}", field, "", hib)
        for n in steps
        for label, field, hib in GROWTH
    ]
    out = []
    for mode in modes:
        out.append(f"\n### checksums: {mode} (median of {nr} rounds; ×n = peer ÷ {base})\n")
        head = ["metric"] + servers
        if "ceiling" in servers and base in servers:
            head.append(f"{base} ÷ ceiling")
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        for label, phase, field, _unit, _hib in rows:
            med = {}
            for s in servers:
                xs = vals.get((s, mode, phase, field))
                med[s] = statistics.median(xs) if xs else None
            if all(v is None for v in med.values()):
                continue
            cells = [label]
            for s in servers:
                v = med[s]
                cell = fmt(v)
                if v is not None and (s, mode) in corrupt and phase in ("put", "mpput", "put4k_c1", "put4k_c16"):
                    cell += " †"
                if s != base and v is not None and med.get(base):
                    cell += f" (×{v / med[base]:.2f})"
                cells.append(cell)
            if "ceiling" in servers and base in servers:
                c, b = med.get("ceiling"), med.get(base)
                cells.append(f"{100 * b / c:.0f} %" if c and b is not None else "–")
            out.append("| " + " | ".join(cells) + " |")
        notes = [
            f"- {s}, {e.split(':', 1)[0]} (round {', '.join(str(x) for x in rs)}):{e.split(':', 1)[1]}"
            for (s, m), es in sorted(failures.items())
            if m == mode
            for e, rs in es.items()
        ]
        if any(m == mode for (_s, m) in corrupt):
            out.append(
                "\n† this server acknowledged the PUTs but returned different bytes on GET in this mode"
                " (see the failures below): its PUT figures do not describe a working upload."
            )
        if notes:
            out.append("\nFailures and failed operations (after the SDK's retries):\n")
            out.extend(notes[:40])
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
