#!/usr/bin/env python3
"""Summarises benches/load/run.sh output: medians per variant and target, and
paired (same-round) ratios, whose median is less sensitive to a noisy machine
than a ratio of medians."""
import csv
import sys
from collections import defaultdict
from statistics import median


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f, delimiter="\t"))


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def med(xs):
    xs = [x for x in xs if x is not None]
    return median(xs) if xs else None


def fmt(x, nd=0):
    return "-" if x is None else f"{x:,.{nd}f}"


runs = rows(sys.argv[1])
by = defaultdict(list)
for r in runs:
    by[(r["variant"], r["target"])].append(r)

print("Closed loop (wrk, -t1 -c64): medians over rounds")
print(f"{'variant':<8} {'target':<10} {'req/s':>9} {'cpu us/req':>10} {'user':>6} {'kernel':>6} {'p50 us':>7} {'p99 us':>7} {'non-2xx/run':>11}")
variants = []
for r in runs:
    if r["variant"] not in variants:
        variants.append(r["variant"])
for v in variants:
    for t in ("direct", "nginx", "scopegate"):
        rs = by[(v, t)]
        if not rs:
            continue
        print(
            f"{v:<8} {t:<10} {fmt(med(num(r['rps']) for r in rs)):>9} {fmt(med(num(r['cpu_us_per_req']) for r in rs), 2):>10} "
            f"{fmt(med(num(r.get('user_us_per_req')) for r in rs), 1):>6} {fmt(med(num(r.get('sys_us_per_req')) for r in rs), 1):>6} "
            f"{fmt(med(num(r['p50_us']) for r in rs)):>7} {fmt(med(num(r['p99_us']) for r in rs)):>7} "
            f"{fmt(med(num(r['non2xx']) for r in rs)):>11}"
        )
print()
print("Paired ratios (median over rounds of the same-round ratio)")
print(f"{'variant':<8} {'sg/nginx req/s':>14} {'sg/direct req/s':>15} {'sg/nginx cpu/req':>16} {'rounds':>6}")
for v in variants:
    rounds = defaultdict(dict)
    for r in runs:
        if r["variant"] == v:
            rounds[r["round"]][r["target"]] = r
    a, b, c = [], [], []
    for rd in rounds.values():
        if {"nginx", "scopegate", "direct"} <= rd.keys():
            sg, ng, di = rd["scopegate"], rd["nginx"], rd["direct"]
            a.append(num(sg["rps"]) / num(ng["rps"]))
            b.append(num(sg["rps"]) / num(di["rps"]))
            if num(sg["cpu_us_per_req"]) and num(ng["cpu_us_per_req"]):
                c.append(num(sg["cpu_us_per_req"]) / num(ng["cpu_us_per_req"]))
    print(f"{v:<8} {fmt(med(a), 3):>14} {fmt(med(b), 3):>15} {fmt(med(c), 3):>16} {len(a):>6}")

def spread(xs):
    xs = [x for x in xs if x is not None]
    return f"{fmt(med(xs))} [{fmt(min(xs))}-{fmt(max(xs))}]" if xs else "-"


if len(sys.argv) > 2:
    ol = rows(sys.argv[2])
    if ol:
        print()
        print("Fixed rate (open loop, benches/load/loadgen.rs), latency from the due time: median [min-max] over rounds")
        print(f"{'load':<5} {'target':<10} {'rate':>7} {'achieved':>8} {'p50 us':>7} {'p99 us':>22} {'p99.9 us':>22} {'cpu us/req':>10} {'errors':>6}")
        g = defaultdict(list)
        for r in ol:
            g[(r["load"], r["target"])].append(r)
        for load in dict.fromkeys(r["load"] for r in ol):
            for t in ("direct", "nginx", "scopegate"):
                rs = g[(load, t)]
                if not rs:
                    continue
                print(
                    f"{load:<5} {t:<10} {fmt(num(rs[0]['rate'])):>7} {fmt(med(num(r['achieved_rps']) for r in rs)):>8} "
                    f"{fmt(med(num(r['p50_us']) for r in rs)):>7} {spread(num(r['p99_us']) for r in rs):>22} "
                    f"{spread(num(r['p999_us']) for r in rs):>22} "
                    f"{fmt(med(num(r['cpu_us_per_req']) for r in rs), 2):>10} {fmt(med(num(r['errors']) for r in rs)):>6}"
                )
            # What each proxy adds over the direct upstream, same rate, same round.
            rounds = defaultdict(dict)
            for r in ol:
                if r["load"] == load:
                    rounds[r["round"]][r["target"]] = r
            added = {}
            for t in ("nginx", "scopegate"):
                for q in ("p99_us", "p999_us"):
                    added[(t, q)] = [num(rd[t][q]) - num(rd["direct"][q]) for rd in rounds.values() if {"direct", t} <= rd.keys()]
            for q, name in (("p99_us", "p99"), ("p999_us", "p99.9")):
                sg, ng = med(added[("scopegate", q)]), med(added[("nginx", q)])
                verdict = "-" if sg is None or ng is None else ("met" if sg <= ng else "MISSED")
                print(
                    f"{load:<5} {name} added over direct: nginx {spread(added[('nginx', q)])} us, "
                    f"scopegate {spread(added[('scopegate', q)])} us (target: scopegate <= nginx: {verdict})"
                )

if len(sys.argv) > 3:
    ex = rows(sys.argv[3])
    if ex:
        print()
        print("Token exchange (one worker, 100 parents x 1000 files, after a warm-up): median [min-max] over rounds")
        print(f"exchanges/s {spread(num(r['per_sec']) for r in ex)}  p50 us {spread(num(r['p50_us']) for r in ex)}  "
              f"p99 us {spread(num(r['p99_us']) for r in ex)}")
        calls = [num(r["calls_per_exchange"]) for r in ex]
        cpu = [num(r["cpu_us_per_exchange"]) for r in ex]
        print(f"upstream calls per exchange {min(calls):.3f}-{max(calls):.3f} (target <= 0.05), "
              f"cpu us per exchange {fmt(med(cpu), 1)}, errors {sum(int(num(r['errors']) or 0) for r in ex)}")
