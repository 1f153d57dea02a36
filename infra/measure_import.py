"""Cold import cost of the Lambda entry point: `import app` against `import boto3` alone.

Each sample is a fresh interpreter (what a cold Lambda start pays), run alternately so both see
the same disk cache; the medians are printed. `python -m infra.measure_import [--runs 9]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from chalicelib.config import REQUIRED_OUTSIDE_LOCAL

from .resources import ROOT

SUBJECTS = {
    "python (no imports)": "pass",
    "import boto3": "import boto3",
    "import app": "import app",
}


def sample(statement: str) -> float:
    """Wall time of a fresh `python -c <statement>` in the project directory, in seconds."""
    # A deployed stage's environment: the settings the template gives every function.
    given = {name: f"measure-{name.lower()}" for name in REQUIRED_OUTSIDE_LOCAL}
    env = {**os.environ, **given, "PYTHONDONTWRITEBYTECODE": "1", "HELPDESK_STAGE": "dev"}
    started = time.perf_counter()
    subprocess.run(  # noqa: S603 - our own interpreter and fixed statements
        [sys.executable, "-c", statement], check=True, cwd=ROOT, env=env
    )
    return time.perf_counter() - started


def measure(runs: int) -> dict[str, float]:
    """Median seconds per subject over `runs` alternating samples (after one warm-up each)."""
    for statement in SUBJECTS.values():
        sample(statement)  # compile the .pyc files and warm the page cache once
    samples: dict[str, list[float]] = {name: [] for name in SUBJECTS}
    for _ in range(runs):
        for name, statement in SUBJECTS.items():
            samples[name].append(sample(statement))
    return {name: statistics.median(values) for name, values in samples.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args(argv)
    medians = measure(args.runs)
    base = medians["python (no imports)"]
    for name, seconds in medians.items():
        print(f"{name:22} {seconds * 1000:7.0f} ms  (+{(seconds - base) * 1000:.0f} ms imports)")
    share = (medians["import boto3"] - base) / (medians["import app"] - base)
    print(f"boto3 is {share:.0%} of the app's import time (median of {args.runs} runs)")


if __name__ == "__main__":
    main()
