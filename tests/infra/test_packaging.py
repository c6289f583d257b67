"""Packaging: requirements.txt follows pyproject.toml, and the zip deploys and registers every function."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

from local.packaging import build_package

ROOT = Path(__file__).resolve().parents[2]


def _requirement_lines(path: Path) -> set[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return {re.sub(r"\s+", "", line) for line in lines if line}


def test_requirements_txt_is_the_core_and_cloud_dependencies_of_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    expected = {re.sub(r"\s+", "", d) for d in project["dependencies"] + project["optional-dependencies"]["cloud"]}
    assert _requirement_lines(ROOT / "requirements.txt") == expected


def test_package_holds_the_app_root_and_nothing_of_the_agent(tmp_path):
    names = build_package(tmp_path / "app.zip")
    assert {"function_app.py", "host.json", "requirements.txt"} <= set(names)
    assert any(n.startswith("functions/") for n in names) and any(n.startswith("shared/") for n in names)
    assert not any(n.startswith(("agent/", "local/", "tests/", "bench/")) for n in names)
    assert not any("__pycache__" in n for n in names)
    again = build_package(tmp_path / "again.zip")
    assert (tmp_path / "app.zip").read_bytes() == (tmp_path / "again.zip").read_bytes() and names == again


@pytest.mark.slow
def test_package_imports_and_registers_every_function_in_a_fresh_venv(tmp_path):
    build_package(tmp_path / "app.zip")
    app_root = tmp_path / "app"
    with zipfile.ZipFile(tmp_path / "app.zip") as archive:
        archive.extractall(app_root)
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(app_root / "requirements.txt")],
                   check=True, timeout=600)
    probe = ("import json, function_app; "
             "print(json.dumps(sorted(f.get_function_name() for f in function_app.app.get_functions())))")
    clean_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    out = subprocess.run([str(python), "-c", probe], cwd=app_root, env=clean_env, check=True,
                         capture_output=True, text=True, timeout=120)
    deployed = json.loads(out.stdout.strip().splitlines()[-1])

    from function_app import app
    from local.dispatcher import registered_functions
    expected = sorted(f.get_function_name() for f in registered_functions(app))
    assert deployed == expected and expected
