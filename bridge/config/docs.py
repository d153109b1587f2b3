"""The settings reference in ``docs/configuration.md``, generated from the
declarations.

The document is hand-written prose around one generated block between
:data:`BEGIN` and :data:`END` markers; :func:`render_settings_reference`
produces that block and a test keeps the file in step with the code.
Regenerate it with::

    python -m bridge.config.docs docs/configuration.md
"""

from __future__ import annotations

import sys
from pathlib import Path

from bridge.config.spec import (
    format_bytes,
    iter_settings,
    repeated_sections,
    section_models,
    toml_value,
)

BEGIN = "<!-- BEGIN GENERATED SETTINGS: python -m bridge.config.docs -->"
END = "<!-- END GENERATED SETTINGS -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")


def render_settings_reference() -> str:
    """One Markdown table per section: key, type, default, meaning."""
    out: list[str] = []
    section = ""
    for spec in iter_settings():
        if spec.section != section:
            section = spec.section
            doc = (section_models()[section].__doc__ or "").strip().splitlines()[0]
            header = f"[[{section}]]" if section in repeated_sections() else f"[{section}]"
            out += [
                "",
                f"### `{header}`",
                "",
                doc,
                "",
                "| Key | Type | Default | Meaning |",
                "|---|---|---|---|",
            ]
        if spec.required:
            default = "**required**"
        elif spec.default is None:
            default = "not set"
        else:
            default = f"`{toml_value(spec.default)}`"
            if isinstance(spec.default, int) and spec.default > 1024 and spec.default % 1024 == 0:
                default += f" ({format_bytes(spec.default)})"
        meaning = spec.description
        if spec.secret_ref:
            meaning += " (Holds a secret's name, never the secret.)"
        out.append(
            f"| `{spec.name}` | {_cell(spec.type_label)} | {_cell(default)} | {_cell(meaning)} |"
        )
    return "\n".join(out).strip("\n") + "\n"


def splice(document: str) -> str:
    """``document`` with its generated block replaced by the current one."""
    head, begin, rest = document.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise ValueError(f"the document has no {BEGIN!r} ... {END!r} block")
    return f"{head}{BEGIN}\n\n{render_settings_reference()}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0] if args else "docs/configuration.md")
    text = path.read_text(encoding="utf-8")
    updated = splice(text)
    if updated != text:
        path.write_text(updated, encoding="utf-8")
        print(f"updated {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
