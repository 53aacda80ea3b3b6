"""Build bouncd's sdist and wheel once per test run and install the wheel into a fresh virtualenv.

Used by ``test_packaging.py`` (the install works, the CLI runs, migrations ship) and by the Postfix
``pipe(8)`` test, whose command runs as an unprivileged user: that user must be able to execute the
Python, so the venv is made from the system ``python3`` when it has ``venv`` (a pyenv Python under
``/root`` is out of its reach) and lives in a world-readable temp directory.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SYSTEM_PYTHON = Path("/usr/bin/python3")


@dataclass(frozen=True)
class InstalledWheel:
    """Where the built distributions are and the venv the wheel was installed into."""

    wheel: Path
    sdist: Path
    venv: Path
    system_python: bool  # made from /usr/bin/python3 (any user can run it)

    @property
    def bouncd(self) -> Path:
        """The installed ``bouncd`` console script."""
        return self.venv / "bin" / "bouncd"


_cached: InstalledWheel | str | None = None


def _venv_python() -> str:
    probe = subprocess.run([str(SYSTEM_PYTHON), "-c", "import venv, ensurepip, sys; assert sys.version_info >= (3, 11)"],
                           capture_output=True) if SYSTEM_PYTHON.exists() else None  # fmt: skip
    return str(SYSTEM_PYTHON) if probe is not None and probe.returncode == 0 else sys.executable


def installed_wheel() -> InstalledWheel | str:
    """The built and installed wheel, or the reason it could not be built (cached for the test run)."""
    global _cached
    if _cached is not None:
        return _cached
    base = Path(tempfile.mkdtemp(prefix="bouncd-wheel-"))
    atexit.register(shutil.rmtree, base, True)
    base.chmod(0o755)
    dist, venv = base / "dist", base / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOUNCD_")}
    # python -m build: the sdist first, then the wheel built from the unpacked sdist, so a file missing
    # from the sdist (e.g. a migration) also goes missing from the wheel and the test below sees it.
    built = subprocess.run([sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)],
                           capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    if built.returncode != 0:
        _cached = f"python -m build failed: {built.stdout[-2000:]}{built.stderr[-2000:]}"
        return _cached
    python = _venv_python()
    steps = [
        [python, "-m", "venv", str(venv)],
        [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
         f"{next(dist.glob('*.whl'))}[postgres]"],
    ]
    for cmd in steps:
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        if res.returncode != 0:
            _cached = f"{' '.join(cmd[:3])} failed: {res.stdout[-2000:]}{res.stderr[-2000:]}"
            return _cached
    for path in [venv, *venv.rglob("*")]:  # readable by the pipe(8) user
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o005 if path.is_dir() else path.stat().st_mode | 0o004)
    _cached = InstalledWheel(next(dist.glob("*.whl")), next(dist.glob("*.tar.gz")), venv, python == str(SYSTEM_PYTHON))
    return _cached
