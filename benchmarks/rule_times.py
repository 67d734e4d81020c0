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


def rule_times(log_lines) -> tuple[dict[str, float], collections.Counter]:
    stamp, rule, started, rule_of = None, None, {}, {}
    seconds, jobs = collections.defaultdict(float), collections.Counter()
    for line in log_lines:
        if m := re.match(r"\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]", line):
            stamp = datetime.datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
        elif m := re.match(r"(?:local)?rule (\w+):", line):
            rule = m.group(1)
        elif (m := re.match(r"\s+jobid: (\d+)", line)) and rule:
            started[m.group(1)], rule_of[m.group(1)], rule = stamp, rule, None
        elif (m := re.match(r"Finished jobid: (\d+)", line)) and m.group(1) in started:
            job = m.group(1)
            seconds[rule_of[job]] += (stamp - started[job]).total_seconds()
            jobs[rule_of[job]] += 1
    return seconds, jobs


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
