"""Optional dependencies (the `rlvr[...]` extras): imported where they are used, with an error that says how
to install them when they are missing."""

from __future__ import annotations

import importlib
from types import ModuleType


def import_extra(module: str, needed_by: str, extra: str) -> ModuleType:
    """`module` imported, or an ImportError naming the setting that needs it (`needed_by`) and the
    `pip install 'rlvr[extra]'` that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"{needed_by} needs {module}; install it with `pip install 'rlvr[{extra}]'`") from e
