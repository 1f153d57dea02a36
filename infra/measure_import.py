"""Cold import cost of each Lambda entry point against `import boto3`, as a deployed function pays.

Every sample is a fresh `python -I -S` whose `sys.path` holds only what the function has in AWS:
the task root as `chalice package` zips it (`app.py`, `chalicelib/`, Chalice's `app` module and the
vendored runtime requirements, `infra/synth.py`) and the SDK the Lambda runtime provides (boto3,
botocore and their dependencies). None of this venv's dev tools are importable, some of which the
app's libraries would otherwise pick up (PyJWT imports `cryptography` whenever it is installed).
`_HANDLER` is set as Lambda sets it, so `app.py` loads what that function serves, and each
statement then imports what the entry point's handler imports on its first call.

Bytecode: as the zip ships. `make synth` puts a CPython 3.11 `.pyc` beside every module of the zip
(app and vendored libraries, `infra.synth.add_bytecode`); the task root here is compiled by the
same function, and the runtime's SDK has its own bytecode, as in Lambda. `--no-bytecode` leaves
the task root uncompiled (what a zip without `.pyc` costs: every module compiled at every cold
start); `make bench` prints both.

`python -m infra.measure_import [--runs 9] [--no-bytecode]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import chalice

from chalicelib.config import REQUIRED_OUTSIDE_LOCAL

from .resources import ROOT
from .synth import (
    APP_FILES,
    PROVIDED_BY_RUNTIME,
    dependency_closure,
    runtime_pins,
    write_bytecode,
)

NO_IMPORTS = "python (no imports)"
BOTO3 = "import boto3"


@dataclass(frozen=True)
class EntryPoint:
    handler: str  # the function's handler, as Lambda puts it in `_HANDLER`
    statement: str  # `import app` plus what the handler imports on its first call


# The kinds of entry point the service has (`None` for one the app does not have yet);
# tests/infra/test_cold_start.py checks this against app.py.
ENTRY_POINTS: dict[str, EntryPoint | None] = {
    "API (api_handler)": EntryPoint("app.app", "import app"),
    "Jira task (ensure_customer)": EntryPoint(
        "app.ensure_customer", "import app; import chalicelib.workflows.tasks"
    ),
    "HR consumer": EntryPoint("app.hr_events", "import app; import chalicelib.hr.consumer"),
}


def _top_level_names(distribution: metadata.Distribution) -> set[str]:
    """The importable names a distribution installs (`pydantic`, `typing_extensions.py`, ...)."""
    names = set()
    for file in distribution.files or []:
        first = file.parts[0]
        if first in {"..", "__pycache__"} or first.endswith((".dist-info", ".pth")):
            continue
        names.add(first)
    return names


def _place(distribution_names: list[str], target: Path, *, copy: bool) -> None:
    for name in distribution_names:
        distribution = metadata.distribution(name)
        site = Path(str(distribution.locate_file("")))
        for top in _top_level_names(distribution):
            source, destination = site / top, target / top
            if destination.exists():
                continue
            if not copy:
                destination.symlink_to(source)
            elif source.is_dir():
                shutil.copytree(source, destination, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, destination)


@contextmanager
def lambda_like_paths(*, bytecode: bool) -> Iterator[list[str]]:
    """`[task root, runtime SDK]`: the deployment package's modules, then the runtime's boto3."""
    with tempfile.TemporaryDirectory(prefix="cold-import-") as tmp:
        task_root, runtime = Path(tmp, "task"), Path(tmp, "runtime")
        task_root.mkdir()
        runtime.mkdir()
        # The runtime's SDK is installed with its bytecode, as the venv's is.
        _place(dependency_closure(sorted(PROVIDED_BY_RUNTIME)), runtime, copy=False)
        _place([pin.split("==")[0] for pin in runtime_pins()], task_root, copy=True)
        # What `chalice package` adds to every zip: its `app` module (the router) and package.
        chalice_dir = task_root / "chalice"
        chalice_dir.mkdir()
        package = Path(chalice.__file__).parent
        shutil.copy2(package / "__init__.py", chalice_dir / "__init__.py")
        shutil.copy2(package / "app.py", chalice_dir / "app.py")
        for name in APP_FILES:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(
                    source, task_root / name, ignore=shutil.ignore_patterns("__pycache__")
                )
            else:
                shutil.copy2(source, task_root / name)
        if bytecode:  # every module of the zip, as `make synth` compiles it
            for source in sorted(task_root.rglob("*.py")):
                write_bytecode(source, source.relative_to(task_root).as_posix(), task_root)
        yield [str(task_root), str(runtime)]


def sample(statement: str, paths: list[str], handler: str = "") -> float:
    """Wall time of a fresh Lambda-like interpreter running `statement`, in seconds."""
    # A deployed stage's environment: the settings the template gives every function.
    given = {name: f"measure-{name.lower()}" for name in REQUIRED_OUTSIDE_LOCAL}
    env = {**os.environ, **given, "HELPDESK_STAGE": "dev", "_HANDLER": handler or "none"}
    prelude = f"import sys; sys.path[:0] = {paths!r}; "
    started = time.perf_counter()
    subprocess.run(  # noqa: S603 - our own interpreter and fixed statements
        [sys.executable, "-I", "-S", "-B", "-c", prelude + statement],
        check=True,
        cwd=paths[0],
        env=env,
    )
    return time.perf_counter() - started


def subjects() -> dict[str, tuple[str, str]]:
    """`{name: (statement, handler)}`: the baselines, then every entry point the app has."""
    found = {NO_IMPORTS: ("pass", ""), BOTO3: ("import boto3", "")}
    for name, entry in ENTRY_POINTS.items():
        if entry is not None:
            found[name] = (entry.statement, entry.handler)
    return found


def measure(runs: int, *, bytecode: bool = True) -> dict[str, float]:
    """Median seconds per subject over `runs` alternating samples (after one warm-up each)."""
    with lambda_like_paths(bytecode=bytecode) as paths:
        chosen = subjects()
        for statement, handler in chosen.values():
            sample(statement, paths, handler)  # warm the page cache once
        samples: dict[str, list[float]] = {name: [] for name in chosen}
        for _ in range(runs):
            for name, (statement, handler) in chosen.items():
                samples[name].append(sample(statement, paths, handler))
    return {name: statistics.median(values) for name, values in samples.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument(
        "--no-bytecode", action="store_true", help="no .pyc in the task root (a zip without them)"
    )
    args = parser.parse_args(argv)
    medians = measure(args.runs, bytecode=not args.no_bytecode)
    boto3 = medians[BOTO3]
    for name, seconds in medians.items():
        print(f"{name:30} {seconds * 1000:7.0f} ms  {seconds / boto3:5.2f}× import boto3")
    for name, entry in ENTRY_POINTS.items():
        if entry is None:
            print(f"{name:30}       — (not in app.py yet)")


if __name__ == "__main__":
    main()
