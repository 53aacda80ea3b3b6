"""The sdist and wheel build, the wheel installs into a fresh virtualenv, and the installed CLI works from there.

``tests/wheel_venv.py`` runs ``python -m build`` (sdist, then the wheel from the unpacked sdist) and
installs the wheel with its dependencies into a new venv. Every command here runs from an empty
directory with a clean environment, so nothing can come from the source tree.
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

import bouncd
from tests.wheel_venv import InstalledWheel, installed_wheel

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "dsn" / "postfix_01_local_unknown_user.eml"


@pytest.fixture(scope="module")
def wheel() -> InstalledWheel:
    """The built distributions and the venv holding the installed wheel."""
    got = installed_wheel()
    if isinstance(got, str):
        pytest.fail(got)
    return got


def run(wheel: InstalledWheel, cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run a program from the venv in ``cwd`` with no BOUNCD_* or PYTHONPATH from the test run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOUNCD_") and k != "PYTHONPATH"}
    return subprocess.run([str(wheel.venv / "bin" / argv[0]), *argv[1:]], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def test_wheel_and_sdist_ship_the_migrations_and_the_type_marker(wheel: InstalledWheel) -> None:
    """Alembic's env.py, script template and every revision are in both distributions (db upgrade needs them)."""
    revisions = sorted(p.name for p in (ROOT / "bouncd" / "db" / "migrations" / "versions").glob("*.py"))
    with zipfile.ZipFile(wheel.wheel) as zf:
        names = set(zf.namelist())
    with tarfile.open(wheel.sdist) as tf:
        sdist_names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    for wanted in ["bouncd/py.typed", "bouncd/db/migrations/env.py", "bouncd/db/migrations/script.py.mako",
                   *(f"bouncd/db/migrations/versions/{r}" for r in revisions)]:  # fmt: skip
        assert wanted in names, f"wheel lacks {wanted}"
        assert wanted in sdist_names, f"sdist lacks {wanted}"
    assert "README.md" in sdist_names and "pyproject.toml" in sdist_names


def test_installed_cli_reports_its_version_and_imports_from_the_venv(wheel: InstalledWheel, tmp_path: Path) -> None:
    """``bouncd --version`` from the fresh venv prints this version; the package comes from the venv, not the tree."""
    res = run(wheel, tmp_path, "bouncd", "--version")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"bouncd {bouncd.__version__}"
    where = run(wheel, tmp_path, "python", "-c", "import bouncd; print(bouncd.__file__)")
    assert Path(where.stdout.strip()).is_relative_to(wheel.venv), where.stdout


def test_installed_cli_parses_a_fixture(wheel: InstalledWheel, tmp_path: Path) -> None:
    """``bouncd parse`` from the venv reads a real Postfix DSN as its expectation file says."""
    res = run(wheel, tmp_path, "bouncd", "parse", str(FIXTURE))
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    expected = json.loads(FIXTURE.with_suffix(".json").read_text())["results"]
    assert [(r["recipient"], r["hard"], r["reason"], r["status"]) for r in rows] == [
        (e["recipient"], e["hard"], e["reason"], e["status"]) for e in expected
    ]


def test_installed_cli_migrates_a_database_and_records_a_bounce(wheel: InstalledWheel, tmp_path: Path) -> None:
    """``bouncd db upgrade`` and ``bouncd ingest`` work from the wheel alone: the migrations are found and run."""
    db = f"sqlite:///{tmp_path / 'var' / 'bouncd.sqlite3'}"
    up = run(wheel, tmp_path, "bouncd", "db", "upgrade", "--db", db)
    assert up.returncode == 0 and "database at" in up.stdout, up.stderr
    ing = run(wheel, tmp_path, "bouncd", "ingest", str(FIXTURE), "--db", db, "--json")
    assert ing.returncode == 0, ing.stderr
    assert json.loads(ing.stdout)["dnc_raised"] == ["nosuchuser@mx.bouncd.test"]
    show = run(wheel, tmp_path, "bouncd", "contact", "show", "nosuchuser@mx.bouncd.test", "--db", db, "--json")
    assert json.loads(show.stdout)["dnc"] is True
