"""The managed runtimes' package sets (``runtimes/<name>.toml``) as profiles, their venvs, and the runtime
matrix's table (stdlib only: the matrix drives other Pythons and imports nothing of the project).

A profile's venv lives in ``.runtimes/<name>/venv``, rebuilt when the profile file changes. It is built with
uv, whose cache hard-links one copy of each wheel's files into every venv that uses it (PyPI's torch is a CUDA
build of several GB; the profiles share what they can without changing a version).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .data import REPO

RUNTIMES = REPO / "runtimes"
CACHE = REPO / ".runtimes"


class StepFailed(AssertionError):
    """A command failed or its outcome was not what the path expects (the message says which)."""


@dataclass(frozen=True)
class Profile:
    name: str
    data: dict[str, Any]
    path: Path

    @property
    def pins(self) -> dict[str, str]:
        """The runtime's packages and what the wheel adds there, exactly as the profile gives them."""
        return {**self.data.get("packages", {}), **self.data.get("added", {})}

    @property
    def connect(self) -> bool:
        return bool(self.data.get("connect", False))

    @property
    def remote_only(self) -> bool:
        return bool(self.data.get("remote_only", False))


def load_profile(name: str) -> Profile:
    path = RUNTIMES / f"{name}.toml"
    if not path.is_file():
        raise ValueError(f"no runtime profile {name!r} (runtimes/{name}.toml); known: {', '.join(profile_names())}")
    with path.open("rb") as handle:
        return Profile(name, tomllib.load(handle), path)


def profile_names() -> list[str]:
    return sorted(p.stem for p in RUNTIMES.glob("*.toml"))


def canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


# --- venvs --------------------------------------------------------------------------------------------------


def interpreter(version: str) -> str:
    """A Python ``version`` (``3.12``) of this machine: on PATH, else under pyenv."""
    found = shutil.which(f"python{version}")
    if found and version_of(found) == version:
        return found
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    for candidate in sorted(glob.glob(f"{root}/versions/{version}.*/bin/python{version}"), reverse=True):
        return candidate
    raise StepFailed(f"the profile needs Python {version}, and this machine has none (PATH, pyenv)")


def version_of(python: str) -> str:
    out = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True)
    return out.stdout.decode().strip()


def uv() -> str:
    """uv from the project's venv (the [test] extra), else from PATH."""
    here = Path(sys.executable).parent / "uv"
    found = str(here) if here.exists() else shutil.which("uv")
    if not found:
        raise StepFailed("uv is not installed: make install (it is in the [test] extra)")
    return found


def fingerprint(profile: Profile) -> str:
    digest = hashlib.sha256(profile.path.read_bytes())
    if "constraints" in profile.data:
        digest.update((REPO / profile.data["constraints"]).read_bytes())
    return digest.hexdigest()[:16]


def build_venv(profile: Profile) -> tuple[Path, bool]:
    """The profile's venv, built unless one for this very profile file is cached. Returns (venv, built)."""
    home = CACHE / profile.name
    venv = home / "venv"
    stamp = home / "built"
    wanted = fingerprint(profile)  # of the file as read now: an edit while building means a rebuild next time
    if stamp.is_file() and stamp.read_text().strip() == wanted and (venv / "bin/python").exists():
        return venv, False
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    python = interpreter(profile.data["python"])
    run_checked([uv(), "venv", "--quiet", "--seed", "--python", python, str(venv)], home)
    requirements = home / "requirements.txt"
    requirements.write_text("".join(f"{name}=={version}\n" for name, version in profile.pins.items()))
    command = [uv(), "pip", "install", "--quiet", "--python", str(venv / "bin/python"), "-r", str(requirements)]
    if "constraints" in profile.data:
        command += ["-c", str(REPO / profile.data["constraints"])]
    run_checked(command, home, timeout=1800)
    (home / "freeze.txt").write_text(freeze(venv))
    stamp.write_text(wanted + "\n")
    return venv, True


def freeze(venv: Path) -> str:
    return run_checked([str(venv / "bin/python"), "-m", "pip", "freeze", "--all"], venv).stdout


def parse_freeze(text: str) -> dict[str, str]:
    packages = {}
    for line in text.splitlines():
        if "==" in line:
            name, version = line.split("==", 1)
            packages[canonical(name)] = version.strip()
        elif " @ " in line:
            name, where = line.split(" @ ", 1)
            packages[canonical(name)] = where.strip()
    return packages


def build_wheel(out: Path) -> Path:
    """This checkout as a wheel (what a user installs), built with the project venv's pip."""
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
    run_checked([*command, "-w", str(out), str(REPO)], REPO)
    (wheel,) = out.glob("spark_sentiment-*.whl")
    return wheel


# --- processes ----------------------------------------------------------------------------------------------


def run_checked(command: list[str], cwd: Path, env: dict | None = None, timeout: float = 900, ok=(0,)):
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode not in ok:
        tail = (result.stdout[-1500:] + "\n" + result.stderr[-3500:]).strip()
        raise StepFailed(f"{Path(command[0]).name} {' '.join(command[1:3])} exited {result.returncode}:\n{tail}")
    return result


def last_json(result: subprocess.CompletedProcess) -> dict:
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise StepFailed(f"no JSON summary on stdout:\n{result.stdout[-1500:]}\n{result.stderr[-2500:]}")
    return json.loads(lines[-1])


# --- the table ----------------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def table(runs: dict[str, dict[str, tuple[str, float]]]) -> str:
    """``column -> step -> (outcome, seconds)`` as a Markdown table, steps in the order first seen; a step a
    column never ran is a dash."""
    steps: list[str] = []
    for results in runs.values():
        steps += [s for s in results if s not in steps]
    width = max(len(s) for s in steps) + 2
    names = list(runs)
    cols = [max(len(n), 12) for n in names]
    lines = ["| " + "step".ljust(width) + " | " + " | ".join(n.ljust(c) for n, c in zip(names, cols)) + " |"]
    lines.append("|" + "-" * (width + 2) + "|" + "|".join("-" * (c + 2) for c in cols) + "|")
    for step in steps:
        cells = []
        for name, col in zip(names, cols):
            outcome = runs[name].get(step)
            cells.append((f"{outcome[0]} {outcome[1]:.1f}s" if outcome else "-").ljust(col))
        lines.append("| " + step.ljust(width) + " | " + " | ".join(cells) + " |")
    return "\n".join(lines)
