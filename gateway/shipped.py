"""What ships with the gateway: its version, and the mappings a config can name bare
(`upstream.mapping: <name>`).

The mappings live in the repository's top-level `mappings/`, where integrators read and edit
them; the wheel installs that directory as `gateway/mappings/` (pyproject.toml, `package-dir`).
Run from a checkout or an editable install, `gateway/mappings/` does not exist and the
checkout's `mappings/` is the one.
"""

from __future__ import annotations

import difflib
import re
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "crm-gateway"
_PACKAGE = Path(__file__).resolve().parent
# A bare name: no directory, no extension. Anything else is a path to a file.
_BARE = re.compile(r"[A-Za-z0-9_-]+")


def version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # imported from a checkout that was never installed
        return "unknown"


def mappings_dir() -> Path:
    installed = _PACKAGE / "mappings"
    return installed if installed.is_dir() else _PACKAGE.parent / "mappings"


def mapping_names() -> list[str]:
    return sorted(p.stem for p in mappings_dir().glob("*.yaml"))


def is_bare(value: str) -> bool:
    return _BARE.fullmatch(value) is not None


class UnknownMapping(LookupError):
    pass


def mapping(name: str) -> Path:
    """The shipped mapping called `name`; UnknownMapping says which names there are."""
    path = mappings_dir() / f"{name}.yaml"
    if path.is_file():
        return path
    names = mapping_names()
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise UnknownMapping(
        f"no mapping named '{name}' ships with crm-gateway; {hint}shipped: {', '.join(names)}. "
        f"A file of your own is named by its path (mappings/{name}.yaml)"
    )
