"""How every `envoi` command finds the instance `envoi dev` (`make dev`) runs.

`envoi dev` starts a private Redis on a port of its own and keeps SQLite under `var/`; it records both
addresses in `var/dev.env` of the project (the folder it runs in):

    # written by `envoi dev`; every envoi command run in this folder or below reads it
    REDIS_URL=redis://127.0.0.1:40123/0
    DATABASE_URL=sqlite:////home/me/app/var/envoi.db

Every other command calls `load_dev_env()` first: it looks for `var/dev.env` in the current directory and
its parents and sets each variable that is not set already (the environment always wins). A relative
SQLite path in DATABASE_URL is then resolved against that project, not the current directory, so
`envoi dlq list` from `app/src/` reads `app/var/envoi.db`.

Without a `var/dev.env` above the current directory nothing changes. This module sits on the settings
floor: it reads files and the environment, and imports nothing of envoi's.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

DEV_ENV = Path("var") / "dev.env"
HEADER = "# written by `envoi dev`; every envoi command run in this folder or below reads it\n"
_SQLITE = re.compile(r"^(?P<scheme>sqlite(?:\+\w+)?:///)(?P<path>[^?]*)(?P<query>\?.*)?$")
_LINE = re.compile(r"^\s*(?P<name>[A-Z][A-Z0-9_]*)\s*=(?P<value>.*)$")


@dataclass(frozen=True, slots=True)
class DevEnv:
    #: The folder holding `var/dev.env`.
    project: Path
    #: The variables taken from the file (those the environment did not set).
    applied: dict[str, str] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.project / DEV_ENV


def find_project(start: Path | None = None) -> Path | None:
    """The nearest folder, from `start` (the current directory) up, that holds `var/dev.env`."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / DEV_ENV).is_file():
            return folder
    return None


def absolute_sqlite_url(url: str, base: Path) -> str:
    """`url` with a relative SQLite path made absolute against `base`; any other URL unchanged."""
    match = _SQLITE.match(url)
    if match is None:
        return url
    path = match["path"]
    if not path or path.startswith("/") or path == ":memory:" or path.startswith("file:"):
        return url
    return f"{match['scheme']}{(base / path).resolve()}{match['query'] or ''}"


def read_dev_env(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _LINE.match(line)
        if match:
            values[match["name"]] = match["value"].strip()
    return values


def write_dev_env(project: Path, values: Mapping[str, str | None]) -> Path:
    """Record `values` (None ones skipped) in `project/var/dev.env`, readable by its owner only."""
    path = project / DEV_ENV
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(f"{name}={value}\n" for name, value in values.items() if value is not None)
    path.write_text(HEADER + body, encoding="utf-8")
    path.chmod(0o600)
    return path


def load_dev_env(
    environ: MutableMapping[str, str] | None = None, *, start: Path | None = None
) -> DevEnv | None:
    """Apply the nearest `var/dev.env` to `environ` (`os.environ`) without overriding anything, then
    resolve a relative SQLite DATABASE_URL against its project. None when there is no such file."""
    env = os.environ if environ is None else environ
    project = find_project(start)
    if project is None:
        return None
    applied = {}
    for name, value in read_dev_env(project / DEV_ENV).items():
        if name not in env:
            env[name] = applied[name] = value
    if "DATABASE_URL" in env:
        env["DATABASE_URL"] = absolute_sqlite_url(env["DATABASE_URL"], project)
    return DevEnv(project, applied)
