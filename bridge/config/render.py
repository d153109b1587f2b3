"""Settings as text: the commented template, the effective settings, and
writing a configuration file safely.

* :func:`render_default_config` builds the file ``bridge config init``
  writes. Every setting appears with its help text as a comment (from the
  declarations); given values are set, defaults are shown commented out, and
  required settings without a value are commented out under a ``REQUIRED``
  marker so ``bridge config check`` reports them until someone fills them in.
* :func:`render_settings` prints effective settings (``bridge config show``):
  every key with its value; ``*_secret`` settings show the secret's *name*
  only (the value is never read here).
* :func:`write_config_file` writes atomically (temporary file in the same
  folder, flushed, then renamed over) with owner-only permissions where the
  OS has them, and refuses to replace an existing file unless asked to.
"""

from __future__ import annotations

import os
import tempfile
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

from bridge import __version__
from bridge.config.model import Settings
from bridge.config.spec import (
    SettingSpec,
    iter_settings,
    repeated_sections,
    section_models,
    toml_value,
)
from bridge.errors import ConfigError

_HEADER = """\
# Dental PMS Bridge configuration (written by 'bridge config init', version {version}).
#
# Lines starting with '#' are comments. A commented-out setting keeps its
# default; settings marked REQUIRED must be filled in. Never put a password
# or token in this file: store it with 'bridge secret set <name>' (it goes to
# the OS keyring) and put only its name in a *_secret setting.
#
# Check the file with:  bridge config check
"""


def _comment(text: str) -> list[str]:
    wrapped = textwrap.wrap(text, width=76, break_on_hyphens=False, break_long_words=False)
    return [f"# {line}" for line in wrapped]


def render_default_config(
    values: Mapping[str, object] | None = None,
    *,
    folders: Sequence[Mapping[str, object]] = (),
) -> str:
    """The commented TOML template, with ``values`` (dotted key -> value) set.

    A repeated section (``[[folders]]``) appears once, commented out, as an
    example; each mapping in ``folders`` (setting name -> value) is written
    as a real ``[[folders]]`` table at the end. Raises KeyError for a key
    that is not a setting.
    """
    values = dict(values or {})
    known = {spec.key for spec in iter_settings()}
    unknown = sorted(set(values) - known) + sorted(
        {f"folders.{name}" for folder in folders for name in folder} - known
    )
    if unknown:
        raise KeyError(f"not settings: {', '.join(unknown)}")
    repeated = repeated_sections()
    lines = [_HEADER.format(version=__version__).rstrip()]
    section = ""
    for spec in iter_settings():
        if spec.section != section:
            section = spec.section
            header = f"[{section}]"
            if section in repeated:
                header = f"# [[{section}]]"
                lines += ["", "", *_comment(_section_doc(section))]
                lines += _comment("Repeat the table for each one; remove the '#' signs to use it.")
                lines.append(header)
            else:
                lines += ["", "", *_comment(_section_doc(section)), header]
        lines.append("")
        lines += _comment(spec.description)
        if spec.section in repeated:
            shown = spec.example if spec.example is not None else spec.default
            lines.append(f"# {spec.name} = {toml_value(shown if shown is not None else '')}")
        elif spec.key in values and values[spec.key] is not None:
            lines.append(f"{spec.name} = {toml_value(values[spec.key])}")
        elif spec.required:
            example = toml_value(spec.example) if spec.example is not None else '""'
            lines += ["# REQUIRED: uncomment and set.", f"# {spec.name} = {example}"]
        elif spec.default is not None:
            lines.append(f"# {spec.name} = {toml_value(spec.default)}")
        else:
            example = toml_value(spec.example) if spec.example is not None else '""'
            lines.append(f"# {spec.name} = {example}")
    for folder in folders:
        lines += ["", "[[folders]]"]
        lines += [f"{name} = {toml_value(value)}" for name, value in folder.items()]
    return "\n".join(lines) + "\n"


def _section_doc(section: str) -> str:
    doc = section_models()[section].__doc__ or section
    return doc.strip().splitlines()[0]


def render_settings(settings: Settings) -> str:
    """Effective settings as TOML-like text; secrets appear by name only."""
    lines: list[str] = []
    section = ""
    repeated = repeated_sections()
    for spec in iter_settings():
        if spec.section in repeated:
            continue
        if spec.section != section:
            section = spec.section
            lines += (["", f"[{section}]"]) if lines else [f"[{section}]"]
        value = getattr(getattr(settings, spec.section), spec.name)
        lines.append(_effective_line(spec, value))
    for name in sorted(repeated):
        tables = getattr(settings, name)
        if not tables:
            lines += ["", f"# [[{name}]]: none"]
        for table in tables:
            lines += ["", f"[[{name}]]"]
            for spec in iter_settings():
                if spec.section == name:
                    lines.append(_effective_line(spec, getattr(table, spec.name)))
    return "\n".join(lines) + "\n"


def _effective_line(spec: SettingSpec, value: object) -> str:
    if value is None:
        return f"# {spec.name} = (not set)"
    line = f"{spec.name} = {toml_value(value)}"
    if spec.secret_ref:
        line += "  # name of a secret in the OS keyring; its value is never shown"
    elif value == spec.default:
        line += "  # default"
    return line


def write_config_file(path: Path, text: str, *, overwrite: bool = False) -> None:
    """Write ``text`` to ``path`` atomically, readable by the owner only.

    Raises ConfigError if ``path`` exists and ``overwrite`` is false, or if
    the file cannot be written.
    """
    if path.exists() and not overwrite:
        raise ConfigError(
            f"{path} already exists",
            fix="Edit it, or pass --force to replace it with a fresh template.",
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ConfigError(f"cannot write {path} ({type(exc).__name__}: {exc.strerror})") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.chmod(0o600)  # mkstemp already creates 0600; keep it explicit
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path} ({type(exc).__name__}: {exc.strerror})") from None
