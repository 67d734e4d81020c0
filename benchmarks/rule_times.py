"""Wall time per rule of a finished Snakemake run, summed over its jobs, read from the run's log.

    python benchmarks/rule_times.py .snakemake/log/<timestamp>.snakemake.log

A job's time runs from the timestamp printed before its `rule <name>:` block to the one printed
before `Finished jobid: <id>`, so with jobs in parallel the sum exceeds the run's wall time. These
are the per-rule figures quoted in the README.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import re


def jobs(log_lines) -> list[dict]:
    """Each finished job: {jobid, rule, start, end, gpu} (gpu: the `gpu` resource it held, 0 if none)."""
    stamp, rule, started, out = None, None, {}, []
    for line in log_lines:
        if m := re.match(r"\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]", line):
            stamp = datetime.datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
        elif m := re.match(r"(?:local)?rule (\w+):", line):
            rule = m.group(1)
        elif (m := re.match(r"\s+jobid: (\d+)", line)) and rule:
            started[m.group(1)] = {"jobid": m.group(1), "rule": rule, "start": stamp, "gpu": 0}
            job, rule = started[m.group(1)], None
        elif (m := re.match(r"\s+resources: .*\bgpu=(\d+)", line)) and started:
            job["gpu"] = int(m.group(1))
        elif (m := re.match(r"Finished jobid: (\d+)", line)) and m.group(1) in started:
            out.append({**started.pop(m.group(1)), "end": stamp})
    return out


def rule_times(log_lines) -> tuple[dict[str, float], collections.Counter]:
    seconds, counts = collections.defaultdict(float), collections.Counter()
    for job in jobs(log_lines):
        seconds[job["rule"]] += (job["end"] - job["start"]).total_seconds()
        counts[job["rule"]] += 1
    return seconds, counts


def max_concurrent(intervals) -> int:
    """The most (start, end) intervals open at one instant (one ending when another starts is not an overlap)."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda ev: (ev[0], ev[1]))
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("log")
    with open(p.parse_args().log) as f:
        seconds, jobs = rule_times(f)
    print("| rule | jobs | seconds |\n|---|---|---|")
    for rule, s in sorted(seconds.items(), key=lambda kv: -kv[1]):
        print(f"| {rule} | {jobs[rule]} | {s:.0f} |")


if __name__ == "__main__":
    main()
