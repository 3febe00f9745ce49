"""Checks the runs of an e2e test against the markers their flow left (e2e/lib.sh).

Every run's flow (create_marker_flow) appends "start TAG" to MARKERS/TAG when it starts and
"end TAG" when it finishes, TAG being the run's Tag input. So a run executed twice, even in part,
leaves two start lines. This checks, printing a table of the runs first:

  - there are --expect runs, each with its own tag, and every one is terminal;
  - each is SUCCEEDED, or FAILED where allowed (--failed_max, --failed_error, --failed_machine);
  - no tag has more than one start line or more end lines than start lines, a SUCCEEDED run has
    exactly one of each, and no marker file belongs to no run;
  - each of --machines ran at least one run that SUCCEEDED (the runs spread).

Exit 0 when all hold, 1 with the reasons otherwise.
"""
import argparse
import json
import os
import re
import sys


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", required=True, help="tetherctl runs list --json output")
    parser.add_argument("--markers", required=True, help="the markers directory")
    parser.add_argument("--expect", type=int, required=True, help="how many runs there must be")
    parser.add_argument("--failed_max", type=int, default=0, help="how many may be FAILED")
    parser.add_argument("--failed_error", default="", help="regex a FAILED run's error must match")
    parser.add_argument("--failed_machine", default="", help="the machine a FAILED run must be on")
    parser.add_argument("--machines", default="", help="comma-separated machines that must each "
                        "have a SUCCEEDED run")
    args = parser.parse_args()

    runs = json.load(open(args.runs)).get("runs", [])
    problems = []
    counts = {}
    for name in os.listdir(args.markers):
        lines = open(os.path.join(args.markers, name)).read().splitlines()
        counts[name] = (lines.count("start " + name), lines.count("end " + name))

    print("%-36s %-5s %-20s %-24s %5s %5s %8s  %s" % (
        "RUN", "TAG", "STATE", "MACHINE", "START", "END", "ATTEMPTS", "ERROR"))
    tags = set()
    failed = 0
    succeeded_on = set()
    for run in sorted(runs, key=lambda r: r.get("inputs", {}).get("Tag", "")):
        tag = run.get("inputs", {}).get("Tag", "")
        state = run.get("state", "").replace("RUN_STATE_", "")
        machine = run.get("machine_id", "")
        error = (run.get("error") or {}).get("message", "")
        starts, ends = counts.get(tag, (0, 0))
        print("%-36s %-5s %-20s %-24s %5d %5d %8s  %s" % (
            run["run_id"], tag, state, machine or "-", starts, ends, run.get("attempt_count", ""),
            error))
        if not tag or tag in tags:
            problems.append("run %s has no tag of its own (%r)" % (run["run_id"], tag))
        tags.add(tag)
        if state == "SUCCEEDED":
            succeeded_on.add(machine)
            if (starts, ends) != (1, 1):
                problems.append("run %s (%s) SUCCEEDED but its flow started %d and ended %d "
                                "times" % (run["run_id"], tag, starts, ends))
        elif state == "FAILED":
            failed += 1
            if args.failed_error and not re.search(args.failed_error, error):
                problems.append("run %s (%s) FAILED with %r, not /%s/" % (
                    run["run_id"], tag, error, args.failed_error))
            if args.failed_machine and machine != args.failed_machine:
                problems.append("run %s (%s) FAILED on %r, not on %s" % (
                    run["run_id"], tag, machine, args.failed_machine))
        else:
            problems.append("run %s (%s) is %s" % (run["run_id"], tag, state))
        if starts > 1:
            problems.append("run %s (%s) EXECUTED %d TIMES" % (run["run_id"], tag, starts))
        if ends > starts:
            problems.append("run %s (%s) ended %d times but started %d" % (
                run["run_id"], tag, ends, starts))
    if len(runs) != args.expect:
        problems.append("%d runs, expected %d" % (len(runs), args.expect))
    if failed > args.failed_max:
        problems.append("%d runs FAILED, at most %d may" % (failed, args.failed_max))
    for tag in sorted(set(counts) - tags):
        problems.append("marker %s belongs to no run" % tag)
    for machine in filter(None, args.machines.split(",")):
        if machine not in succeeded_on:
            problems.append("no run SUCCEEDED on %s" % machine)
    for problem in problems:
        print("check_runs: " + problem, file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
