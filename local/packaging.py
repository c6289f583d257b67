"""`ssm-connector package`: the Function App's deployable zip.

The app root deploys as-is: `function_app.py`, `host.json`, `requirements.txt` and the two packages
the functions import (`functions/`, `shared/`). The agent and the local runtime stay out. Dependencies
are installed by the platform's remote build from `requirements.txt` (docs/deploy.md).
"""
from __future__ import annotations

import argparse
import zipfile
from pathlib import Path

from shared.messages import text

ROOT = Path(__file__).resolve().parents[1]
APP_FILES = ("function_app.py", "host.json", "requirements.txt")
APP_PACKAGES = ("functions", "shared")
EXCLUDED_PARTS = {"__pycache__", ".pytest_cache"}


def app_files(root: Path = ROOT) -> list[Path]:
    """Every file of the app root that belongs in the package, relative to `root`."""
    files = [Path(name) for name in APP_FILES]
    for package in APP_PACKAGES:
        for path in sorted((root / package).rglob("*")):
            if path.is_file() and not EXCLUDED_PARTS & set(path.parts) and path.suffix != ".pyc":
                files.append(path.relative_to(root))
    return files


def build_package(out: Path, root: Path = ROOT) -> list[str]:
    """Write the zip (stable order and timestamps, so the same tree gives the same bytes)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    names = []
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for relative in app_files(root):
            info = zipfile.ZipInfo(relative.as_posix(), date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, (root / relative).read_bytes())
            names.append(relative.as_posix())
    return names


def _package(args: argparse.Namespace) -> int:
    out = Path(args.out)
    names = build_package(out)
    print(text("local.package.written", path=out, files=len(names), size=out.stat().st_size // 1024))
    print(text("local.package.deploy", path=out))
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("package", help=text("cli.package"))
    parser.add_argument("--out", default="dist/function-app.zip", help=text("cli.package.out"))
    parser.set_defaults(handler=_package)
