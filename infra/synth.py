"""`make synth`: the deployable CloudFormation template and Lambda zip in `infra/out/`, offline.

1. Vendor the runtime dependencies for Lambda (manylinux2014 for the functions' architecture,
   `lambda_architecture` in `.chalice/config.json`: arm64, CPython 3.11) with
   `pip install --no-deps`, at exactly the versions installed in this venv (the ones the tests
   ran against), leaving out what the Lambda runtime already has (boto3, botocore, s3transfer
   and their dependencies): PynamoDB would otherwise pull botocore and make the zip ~18 MB.
2. Stage a copy of the project with that `vendor/`, an empty `requirements.txt` (so Chalice
   downloads nothing) and the base role policy, then run
   `chalice package --pkg-format cloudformation --merge-template <infra.template> ...`.
3. Add the bytecode the Lambda runtime (CPython 3.11) loads: an unchecked hash-based `.pyc`
   beside every `.py` of the zip (`add_bytecode`; why: docs/decisions.md, "Cold start").
4. Check the result (every patched resource exists) and write `infra/out/template.json`,
   `infra/out/deployment.zip` and `infra/out/synth.json` (what was built, for `infra.deploy`).

Pip needs the wheels once (PyPI, or `PIP_FIND_LINKS` / `PIP_NO_INDEX=1` with a wheelhouse);
the vendored tree is reused while the pins do not change, so later runs need no network.
`--template-only` skips vendoring: the template is complete but the zip is not deployable.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import py_compile
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from chalice.cli.factory import CLIFactory
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from chalicelib.config import REQUIRED_OUTSIDE_LOCAL

from . import access, template
from .functions import app_functions
from .resources import ROOT

OUT = ROOT / "infra" / "out"
# Lambda architecture (Chalice's `lambda_architecture`) → pip platform tag and machine name.
# Amazon Linux 2 (glibc 2.26) runs manylinux2014 wheels on both.
PLATFORMS = {
    "arm64": ("manylinux2014_aarch64", "aarch64"),
    "x86_64": ("manylinux2014_x86_64", "x86_64"),
}
PYTHON_VERSION = "3.11"
# The bytecode the runtime loads: `__pycache__/<module>.cpython-311.pyc`.
BYTECODE_TAG = "cpython-311"
# Already in the Lambda Python runtime: the SDK and its own dependencies. Vendoring botocore
# alone would add ~13 MB; a vendored urllib3 or jmespath would shadow the runtime's copy.
PROVIDED_BY_RUNTIME = frozenset(
    {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"}
)
MARKER_ENVIRONMENT = {
    "python_version": PYTHON_VERSION,
    "python_full_version": f"{PYTHON_VERSION}.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "os_name": "posix",
}
MAX_ZIP_BYTES = 15 * 1024 * 1024
APP_FILES = ("app.py", "chalicelib")


@dataclass
class SynthResult:
    stage: str
    template_only: bool
    template: str
    package: str | None
    package_bytes: int
    vendored: list[str]
    seconds: float


# --- vendoring ------------------------------------------------------------------------------


def lambda_architecture(stage: str) -> str:
    """The functions' architecture for `stage`, as `chalice package` will declare it."""
    config = CLIFactory(str(ROOT)).create_config_obj(chalice_stage_name=stage)
    architecture = str(config.lambda_architecture)
    if architecture not in PLATFORMS:
        raise SystemExit(f"lambda_architecture {architecture!r} is not one of {sorted(PLATFORMS)}")
    return architecture


def _applies(requirement: Requirement, extras: set[str], machine: str = "aarch64") -> bool:
    if requirement.marker is None:
        return True
    environment = {**MARKER_ENVIRONMENT, "platform_machine": machine}
    return any(
        Marker(str(requirement.marker)).evaluate({**environment, "extra": extra})
        for extra in extras | {""}
    )


def runtime_pins(
    requirements_file: Path = ROOT / "requirements.txt", machine: str = "aarch64"
) -> list[str]:
    """`name==version` of every runtime dependency (transitively), as installed in this venv."""
    pins: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    queue: list[Requirement] = []
    for raw_line in requirements_file.read_text().splitlines():
        line = raw_line.split("#", 1)[0].strip()
        if line:
            queue.append(Requirement(line))
    while queue:
        requirement = queue.pop()
        name = canonicalize_name(requirement.name)
        extras = frozenset(requirement.extras)
        if name in PROVIDED_BY_RUNTIME or (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            raise SystemExit(f"{name} is not installed in this venv: run `make` first") from None
        if requirement.specifier and version not in requirement.specifier:
            raise SystemExit(f"{name} {version} is installed but {requirement} is required")
        pins[name] = version
        for raw in metadata.requires(name) or []:
            child = Requirement(raw)
            if _applies(child, set(extras), machine):
                queue.append(child)
    return sorted(f"{name}=={version}" for name, version in pins.items())


def dependency_closure(names: list[str]) -> list[str]:
    """`names` and everything they require (installed in this venv), as distribution names."""
    found: set[str] = set()
    queue = [Requirement(name) for name in names]
    while queue:
        requirement = queue.pop()
        name = canonicalize_name(requirement.name)
        if name in found:
            continue
        found.add(name)
        for raw in metadata.requires(name) or []:
            child = Requirement(raw)
            if _applies(child, set()):
                queue.append(child)
    return sorted(found)


def vendor(pins: list[str], target: Path, architecture: str = "arm64") -> None:
    """Install `pins` for Lambda on `architecture` into `target` (reused while unchanged)."""
    platform, machine = PLATFORMS[architecture]
    stamp = target / ".pins"
    wanted = "\n".join(pins)
    if stamp.exists() and stamp.read_text() == wanted:
        return
    if target.exists():
        shutil.rmtree(target)
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        "--no-compile",
        "--target",
        str(target),
        "--platform",
        platform,
        "--only-binary=:all:",
        "--python-version",
        PYTHON_VERSION,
        "--implementation",
        "cp",
        *pins,
    ]
    subprocess.run(command, check=True)  # noqa: S603 - our own interpreter, pinned arguments
    for junk in (target / "bin",):
        shutil.rmtree(junk, ignore_errors=True)
    for cache in list(target.rglob("__pycache__")):
        shutil.rmtree(cache, ignore_errors=True)
    extensions = [p.name for p in target.rglob("*.so")]
    wrong = [n for n in extensions if f"{machine}-linux-gnu" not in n and "abi3" not in n]
    if wrong:
        raise SystemExit(f"vendored extensions are not for Linux {machine}: {wrong}")
    if not any(n.startswith(f"_pydantic_core.cpython-311-{machine}-linux-gnu") for n in extensions):
        raise SystemExit(f"pydantic-core was not vendored as a CPython 3.11 Linux {machine} wheel")
    stamp.write_text(wanted)


# --- bytecode -------------------------------------------------------------------------------


def write_bytecode(source: Path, relative: str, root: Path) -> str:
    """Compile `root/relative` (a `.py`) for CPython 3.11 into its `__pycache__`; its path.

    Unchecked hash-based (PEP 552): the runtime uses it without looking at the source. A
    timestamp-based one would be valid only if the source kept its mtime through the zip (Chalice
    dates every entry 1980-01-01), and one Python rejects is compiled again at every cold start
    without being saved (/var/task is read-only). Correct because it is compiled from the very
    source it sits beside, in the same build; the source hash it records lets a test prove it.
    """
    if sys.implementation.cache_tag != BYTECODE_TAG:
        raise SystemExit(f"bytecode for Lambda needs CPython 3.11, not {sys.implementation.name}")
    cached = importlib.util.cache_from_source(relative)
    py_compile.compile(
        str(source),
        cfile=str(root / cached),
        dfile=f"/var/task/{relative}",
        doraise=True,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    return cached


def add_bytecode(zip_file: Path) -> int:
    """Add to `zip_file` the `.pyc` of each of its `.py`, dated and moded like it; how many."""
    with zipfile.ZipFile(zip_file) as archive:
        sources = [i for i in archive.infolist() if i.filename.endswith(".py")]
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(zip_file, "a") as archive:
        root = Path(tmp)
        for info in sources:
            source = root / info.filename
            source.parent.mkdir(parents=True, exist_ok=True)
            source.write_bytes(archive.read(info))
            cached = write_bytecode(source, info.filename, root)
            entry = zipfile.ZipInfo(cached, date_time=info.date_time)
            entry.external_attr = info.external_attr
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, (root / cached).read_bytes())
    return len(sources)


# --- staging and packaging ------------------------------------------------------------------


def stage_project(stage: str, build: Path, vendor_dir: Path | None) -> None:
    """A copy of the app as Chalice should package it for `stage`."""
    for name in APP_FILES:
        target = build / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, target)
    chalice_dir = build / ".chalice"
    if chalice_dir.exists():
        shutil.rmtree(chalice_dir)
    chalice_dir.mkdir(parents=True)
    shutil.copy2(ROOT / ".chalice" / "config.json", chalice_dir / "config.json")
    # autogen_policy is false: each function's role gets this inline policy, the rest of its
    # permissions come from infra/access.py as separate AWS::IAM::Policy resources.
    (chalice_dir / f"policy-{stage}.json").write_text(
        json.dumps(access.base_role_policy(), indent=2)
    )
    (build / "requirements.txt").write_text(
        "# Vendored by infra/synth.py (vendor/): Chalice must not resolve botocore again.\n"
    )
    link = build / "vendor"
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.exists():
        shutil.rmtree(link)
    if vendor_dir is not None:
        link.symlink_to(vendor_dir.resolve(), target_is_directory=True)


def chalice_package(build: Path, stage: str, merge_template: Path, out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.setdefault("AWS_DEFAULT_REGION", env.get("AWS_REGION", "eu-west-1"))
    # Chalice imports app.py under the stage's own variables (HELPDESK_STAGE=<stage>), where a
    # missing setting fails the import (chalicelib/config.py). Nothing runs here and the
    # functions' environment comes from infra/template.py, not from this process: placeholders.
    env.update(dict.fromkeys(REQUIRED_OUTSIDE_LOCAL, "set-by-the-template"))
    command = [
        sys.executable,
        "-c",
        "import sys; from chalice.cli import main; sys.exit(main())",
        "--project-dir",
        str(build),
        "package",
        "--pkg-format",
        "cloudformation",
        "--stage",
        stage,
        "--merge-template",
        str(merge_template),
        str(out),
    ]
    subprocess.run(command, check=True, env=env, cwd=build)  # noqa: S603 - fixed command


def check_merged(merged: dict[str, Any]) -> None:
    """Every resource we patched must be one Chalice generated (else it has no `Type`)."""
    resources: dict[str, Any] = merged["Resources"]
    untyped = [rid for rid, body in resources.items() if "Type" not in body]
    if untyped:
        raise SystemExit(
            f"the merge template patches resources Chalice did not generate: {sorted(untyped)}"
        )


def synth(
    stage: str,
    *,
    template_only: bool = False,
    out: Path = OUT,
    vendor_cache: Path = OUT / "vendor",
) -> SynthResult:
    """Build `out/template.json` (and, unless `template_only`, `out/deployment.zip`)."""
    started = time.perf_counter()
    stages = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"]
    if stage not in stages:
        raise SystemExit(f"stage {stage!r} is not in .chalice/config.json")
    out.mkdir(parents=True, exist_ok=True)
    build = out / "build" / stage
    build.mkdir(parents=True, exist_ok=True)

    pins: list[str] = []
    vendor_dir: Path | None = None
    if not template_only:
        architecture = lambda_architecture(stage)
        platform, machine = PLATFORMS[architecture]
        pins = runtime_pins(machine=machine)
        digest = hashlib.sha256("\n".join(pins).encode()).hexdigest()[:12]
        vendor_dir = vendor_cache / f"{platform}-cp311-{digest}"
        vendor(pins, vendor_dir, architecture)
    stage_project(stage, build, vendor_dir)

    extra = template.build(stage, app_functions(stage))
    merge_file = out / f"merge-{stage}.json"
    merge_file.write_text(json.dumps(extra, indent=2, sort_keys=True))
    packaged = out / "package" / stage
    chalice_package(build, stage, merge_file, packaged)

    merged = json.loads((packaged / "sam.json").read_text())
    check_merged(merged)
    template_file = out / "template.json"
    template_file.write_text(json.dumps(merged, indent=2))
    zip_file = out / "deployment.zip"
    zip_file.unlink(missing_ok=True)
    package: Path | None = None
    size = (packaged / "deployment.zip").stat().st_size
    if not template_only:
        shutil.move(packaged / "deployment.zip", zip_file)
        add_bytecode(zip_file)
        size = zip_file.stat().st_size
        package = zip_file
        if size > MAX_ZIP_BYTES:
            raise SystemExit(f"the deployment package is {size / 2**20:.1f} MiB (> 15 MiB)")
    shutil.rmtree(packaged.parent)
    result = SynthResult(
        stage=stage,
        template_only=template_only,
        template=str(template_file),
        package=str(package) if package else None,
        package_bytes=size,
        vendored=pins,
        seconds=round(time.perf_counter() - started, 2),
    )
    (out / "synth.json").write_text(json.dumps(asdict(result), indent=2))
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="dev", choices=sorted(template.STAGES))
    parser.add_argument(
        "--template-only",
        action="store_true",
        help="skip vendoring: a complete template, but no deployable zip",
    )
    args = parser.parse_args(argv)
    result = synth(args.stage, template_only=args.template_only)
    print(f"template  {result.template}")
    if result.package:
        print(f"package   {result.package} ({result.package_bytes / 2**20:.2f} MiB)")
    print(f"synth     {result.seconds:.1f} s, stage {result.stage}")


if __name__ == "__main__":
    main()
