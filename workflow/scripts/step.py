"""Run one step of one patient into its own folder, and record how it ended.

    python step.py STEP DIR [--needs FILE]... -- SHELL_COMMAND

A tool's data error (exit 1: bad input; 3: empty result, e.g. no lungs) is a result of the
dataset, not a failure of the workflow: DIR keeps only `stderr.log` and a `status.json` that
names the error line and its hint, and the job succeeds, so the dataset steps (statistics,
report) still run over the other patients. Anything else (2: a usage error, i.e. a bug in the
workflow; a signal; the cluster's out-of-memory kill; a full disk) fails the job as usual, and
Snakemake removes DIR, retries it or reports it.
"""

import json
import os
import resource
import subprocess
import sys
import time

DATA_ERRORS = {1, 3}
# Exit 1 also covers the machine's own failures; these leave no result worth recording: the job
# fails, so a rerun after freeing space (or on a healthy node) does the step again.
MACHINE_ERRORS = ("(os error 28)", "(os error 122)", "(os error 5)", "(os error 12)")  # ENOSPC EDQUOT EIO ENOMEM


def first_error(stderr: str) -> tuple[str, str]:
    """The first `tool: error: ...` line (the root cause in a pipe) and the hint after it."""
    lines = stderr.splitlines()
    for i, line in enumerate(lines):
        if ": error: " in line:
            hint = lines[i + 1].strip() if i + 1 < len(lines) else ""
            return line.strip(), hint.removeprefix("hint: ") if hint.startswith("hint:") else ""
    return (lines[-1].strip() if lines else "no message"), ""


def write_status(outdir: str, status: dict) -> None:
    tmp = os.path.join(outdir, ".status.json.tmp")
    with open(tmp, "w") as f:
        json.dump(status, f, indent=1)
    os.replace(tmp, os.path.join(outdir, "status.json"))


def main(argv: list[str]) -> int:
    step, outdir = argv[0], argv[1]
    sep = argv.index("--")
    needs = [argv[i + 1] for i in range(2, sep) if argv[i] == "--needs"]
    command = " ".join(argv[sep + 1 :])
    os.makedirs(outdir, exist_ok=True)
    missing = [n for n in needs if not os.path.exists(n)]
    if missing:
        # An earlier step of this patient failed: say so instead of running on nothing.
        write_status(outdir, {"step": step, "ok": False, "skipped": True,
                              "error": f"not run: {missing[0]} is missing (an earlier step failed)", "hint": ""})
        return 0
    start = time.monotonic()
    run = subprocess.run(["bash", "-o", "pipefail", "-c", command], stderr=subprocess.PIPE)
    seconds = round(time.monotonic() - start, 3)
    sys.stderr.buffer.write(run.stderr)
    with open(os.path.join(outdir, "stderr.log"), "wb") as f:
        f.write(run.stderr)
    # The largest resident set of any tool this step ran (Linux reports kB): what mem_mb must cover.
    peak_mb = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    status = {"step": step, "ok": run.returncode == 0, "exit": run.returncode, "seconds": seconds, "peak_rss_mb": peak_mb}
    if run.returncode != 0:
        error, hint = first_error(run.stderr.decode("utf-8", "replace"))
        if run.returncode not in DATA_ERRORS or any(m in error for m in MACHINE_ERRORS):
            return run.returncode if run.returncode > 0 else 128 - run.returncode
        # The tools write atomically, but a pipe's first tool may have finished: leave no output
        # of a failed step that could pass for a complete one.
        for name in os.listdir(outdir):
            if name != "stderr.log":
                os.remove(os.path.join(outdir, name))
        status["error"], status["hint"] = error, hint
    write_status(outdir, status)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
