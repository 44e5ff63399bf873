"""Check that spacy-seqlab's pinned stack resolves on each supported Python: for every
version and extra, ``pip install --dry-run --only-binary=:all: --python-version V`` of the
wheel's requirements under constraints.txt. Needs PyPI; nothing is installed.

pip evaluates environment markers for the interpreter running it, not for
``--python-version``, so the markers of the wheel's Requires-Dist and of constraints.txt
are evaluated here for the target version and the requirements passed plainly.
Usage: python scripts/resolve_pythons.py WHEEL [--versions 3.10 3.12] [--extras recurrent test]
(build WHEEL with ``pip wheel --no-deps . -w DIR``). seqeval (bench extra) ships only
as an sdist, so --only-binary resolves its dependency scikit-learn in its place.
"""
import argparse
import subprocess
import sys
import tempfile
import zipfile
from email.parser import Parser
from pathlib import Path
from typing import Dict, List

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parent.parent
SDIST_ONLY = {"seqeval": "scikit-learn"}  # sdist-only requirement -> its binary dependencies


def plain(lines: List[str], env: Dict[str, str], extra: str) -> List[str]:
    """The requirements that apply to ``env`` (with ``extra``), markers dropped."""
    out = []
    for line in lines:
        req = Requirement(line)
        if req.marker is None or any(req.marker.evaluate({**env, "extra": e}) for e in ("", extra)):
            req.marker = None
            out.append(SDIST_ONLY.get(req.name, str(req)))
    return out


def resolve(wheel: Path, version: str, extra: str, workdir: Path) -> str:
    """pip's dry run for one (version, extra); returns a one-line verdict."""
    with zipfile.ZipFile(wheel) as zf:
        metadata = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(zf.read(metadata).decode())
    if f"{version}.0" not in SpecifierSet(meta["Requires-Python"]):
        return f"refused by Requires-Python {meta['Requires-Python']}"
    env = {"python_version": version, "python_full_version": f"{version}.0"}
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    pins = [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]
    reqs = workdir / f"requirements-{version}-{extra}.txt"
    cons = workdir / f"constraints-{version}.txt"
    reqs.write_text("\n".join(plain(meta.get_all("Requires-Dist"), env, extra)) + "\n")
    cons.write_text("\n".join(plain(pins, env, "")) + "\n")
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q",
           "--only-binary=:all:", "--python-version", version, "--target", str(workdir / "t"),
           "-c", str(cons), "-r", str(reqs)]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode:
        errors = [line for line in run.stderr.splitlines() if line.startswith("ERROR")]
        return "FAILED: " + " | ".join(errors[-3:])
    return "resolves"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel", type=Path)
    parser.add_argument("--versions", nargs="+", default=["3.10", "3.11", "3.12", "3.13"])
    parser.add_argument("--extras", nargs="+", default=["", "recurrent", "transformers", "test", "bench"])
    args = parser.parse_args()
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for version in args.versions:
            for extra in args.extras:
                verdict = resolve(args.wheel, version, extra, Path(tmp))
                failed |= verdict != "resolves"
                print(f"Python {version} {extra or 'core'}: {verdict}", flush=True)
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
