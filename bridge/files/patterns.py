"""Which paths below an export folder are the folder's files.

:class:`FileFilter` answers two questions for paths given relative to the
folder, with ``/`` separators (:func:`relative`):

* :meth:`~FileFilter.wants`: is this file one to upload? Its name (or, for
  a pattern containing ``/``, its whole relative path) matches an
  ``include`` pattern and no ``exclude`` pattern; files inside subfolders
  count only for a recursive folder.
* :meth:`~FileFilter.enters`: should a scan (or an event) look inside this
  subfolder? Not when the folder is not recursive, not for ignored folders
  (the archive folder and the bridge's own folders: files the bridge itself
  writes are never picked up), and not when an ``exclude`` pattern matches
  the subfolder's name (``.*`` skips hidden folders).

Patterns use ``*`` and ``?`` (and ``[...]``) and compare case-insensitively,
as Windows file systems do. Pure and thread-safe.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable
from pathlib import Path


def relative(root: Path, path: str | os.PathLike[str]) -> str | None:
    """``path`` below ``root`` with ``/`` separators; None if it is not below ``root``."""
    try:
        rel = Path(path).relative_to(root)
    except ValueError:
        return None
    text = rel.as_posix()
    return None if text in ("", ".") else text


class FileFilter:
    def __init__(
        self,
        root: Path,
        include: Iterable[str],
        exclude: Iterable[str],
        *,
        recursive: bool,
        ignored: Iterable[Path] = (),
    ) -> None:
        self.root = root
        self.recursive = recursive
        self._include = tuple(p.casefold() for p in include)
        self._exclude = tuple(p.casefold() for p in exclude)
        self._ignored = tuple(
            rel for rel in (relative(root, path) for path in ignored) if rel is not None
        )

    def wants(self, rel: str) -> bool:
        """True for a file (``rel`` below the root) that should be uploaded."""
        parent, _, name = rel.rpartition("/")
        if parent and not self._enters_all(parent):
            return False
        folded, name = rel.casefold(), name.casefold()
        if not any(_matches(p, name, folded) for p in self._include):
            return False
        return not any(_matches(p, name, folded) for p in self._exclude)

    def enters(self, rel_dir: str) -> bool:
        """True if a scan should look inside the subfolder ``rel_dir``."""
        if not self.recursive or self._is_ignored(rel_dir):
            return False
        name = rel_dir.rpartition("/")[2].casefold()
        return not any("/" not in p and fnmatch.fnmatchcase(name, p) for p in self._exclude)

    def _enters_all(self, rel_dir: str) -> bool:
        parts = rel_dir.split("/")
        return all(self.enters("/".join(parts[: i + 1])) for i in range(len(parts)))

    def _is_ignored(self, rel_dir: str) -> bool:
        return any(rel_dir == ig or rel_dir.startswith(ig + "/") for ig in self._ignored)

    @property
    def ignored(self) -> tuple[str, ...]:
        """The ignored subfolders, relative to the root."""
        return self._ignored


def _matches(pattern: str, name: str, rel: str) -> bool:
    return fnmatch.fnmatchcase(rel if "/" in pattern else name, pattern)
