"""Fetch the dashboard's JavaScript from the npm registry at pinned versions, check each
tarball against its pinned sha512 (the registry's `integrity`), and write the files we serve
with their licences under src/easytask/ui/static/vendor/ (axe-core, for tests only, under
tests/browser/vendor/). The files are committed: a fresh clone needs no network.

    python scripts/vendor_js.py           # fetch, verify, write
    python scripts/vendor_js.py --check   # verify the committed files against MANIFEST.json
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import sys
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UI_VENDOR = ROOT / "src" / "easytask" / "ui" / "static" / "vendor"
TEST_VENDOR = ROOT / "tests" / "browser" / "vendor"
REGISTRY = "https://registry.npmjs.org"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    integrity: str  # sha512-<base64>, as `npm view <name>@<version> dist.integrity` prints
    files: tuple[str, ...]  # paths inside the tarball's package/ folder
    dest: Path

    @property
    def tarball(self) -> str:
        base = self.name.rsplit("/", 1)[-1]
        return f"{REGISTRY}/{self.name}/-/{base}-{self.version}.tgz"

    @property
    def folder(self) -> Path:
        return self.dest / self.name.rsplit("/", 1)[-1]


PACKAGES = (
    Package("htmx.org", "2.0.11",
            "sha512-Thx/WtpeOQqSrqBCw/A1cwGJGg4UrVa3+sW0GmrM3p4gJgO89ecH4qtbnyzDDWFvBTqjnIMCgELTNt636dtamA==",
            ("dist/htmx.min.js", "LICENSE"), UI_VENDOR),
    Package("htmx-ext-ws", "2.0.4",
            "sha512-LnOpFRL/2hInhdKl/9N0OJsb4GYQ5/teUdTHNZYY9ytYdxYEqjfLEe0MWgF3ODjfwGJRb4E95igAbU66te48ZA==",
            ("dist/ws.min.js", "LICENSE"), UI_VENDOR),
    Package("idiomorph", "0.8.0",
            "sha512-R47JBL+6jHDQvcnbppIUtXXcxi5h6+wuCEEZXnRhUltsgzPFKzThL5PuHppP9ypJuy+7WawcY1TsSBD/iQbMhw==",
            ("dist/idiomorph.min.js", "dist/idiomorph-ext.min.js", "LICENSE"), UI_VENDOR),
    Package("ansi_up", "6.0.6",
            "sha512-yIa1x3Ecf8jWP4UWEunNjqNX6gzE4vg2gGz+xqRGY+TBSucnYp6RRdPV4brmtg6bQ1ljD48mZ5iGSEj7QEpRKA==",
            ("ansi_up.js", "LICENSE"), UI_VENDOR),
    Package("uplot", "1.6.32",
            "sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==",
            ("dist/uPlot.iife.min.js", "dist/uPlot.min.css", "LICENSE"), UI_VENDOR),
    Package("@dagrejs/dagre", "1.1.5",
            "sha512-Ghgrh08s12DCL5SeiR6AoyE80mQELTWhJBRmXfFoqDiFkR458vPEdgTbbjA0T+9ETNxUblnD0QW55tfdvi5pjQ==",
            ("dist/dagre.min.js", "LICENSE"), UI_VENDOR),
    Package("axe-core", "4.11.0",
            "sha512-ilYanEU8vxxBexpJd8cWM4ElSQq4QctCLKih0TSfjIfCQTeyH/6zVrmIJfLPrKTKJRbiG+cfnZbQIjAlJmF1jQ==",
            ("axe.min.js", "LICENSE"), TEST_VENDOR),
)  # fmt: skip


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(pkg: Package) -> dict[str, bytes]:
    with urllib.request.urlopen(pkg.tarball, timeout=60) as response:
        blob = response.read()
    algo, _, expected = pkg.integrity.partition("-")
    actual = base64.b64encode(hashlib.new(algo, blob).digest()).decode()
    if actual != expected:
        raise SystemExit(f"{pkg.name}@{pkg.version}: tarball {algo} is {actual}, pinned {expected}")
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        for path in pkg.files:
            member = tar.extractfile(f"package/{path}")
            if member is None:
                raise SystemExit(f"{pkg.name}@{pkg.version}: no {path} in the tarball")
            out[Path(path).name] = member.read()
    return out


def manifest_path(dest: Path) -> Path:
    return dest / "MANIFEST.json"


def write() -> None:
    manifests: dict[Path, dict[str, dict[str, object]]] = {}
    for pkg in PACKAGES:
        files = fetch(pkg)
        pkg.folder.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (pkg.folder / name).write_bytes(data)
        manifests.setdefault(pkg.dest, {})[pkg.name] = {
            "version": pkg.version,
            "integrity": pkg.integrity,
            "files": {name: sha256(data) for name, data in sorted(files.items())},
        }
        print(f"{pkg.name}@{pkg.version}: {', '.join(sorted(files))}")
    for dest, manifest in manifests.items():
        manifest_path(dest).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def check() -> int:
    problems: list[str] = []
    for pkg in PACKAGES:
        manifest = json.loads(manifest_path(pkg.dest).read_text())
        entry = manifest.get(pkg.name)
        if entry is None or entry["version"] != pkg.version:
            problems.append(f"{pkg.name}: manifest is not at {pkg.version}")
            continue
        for name, digest in entry["files"].items():
            path = pkg.folder / name
            if not path.exists() or sha256(path.read_bytes()) != digest:
                problems.append(f"{path.relative_to(ROOT)}: missing or changed")
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        print("vendored files drifted: run python scripts/vendor_js.py", file=sys.stderr)
        return 1
    print("vendored JavaScript matches its manifest")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        sys.exit(check())
    write()
