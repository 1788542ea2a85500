"""mkdocs hook: the command reference, generated from the real argparse parser at build time.

``docs/reference/cli.md`` holds an introduction and the marker line ``<!-- commands -->``;
the hook replaces the marker with one section per command (and per sub-command of
``classify`` and ``qgis``): its usage, description and every option with its help, default
and allowed values, as ``aerialseg COMMAND -h`` prints them. Hidden options are left out,
old spellings (``cli.common.Deprecated``) are listed as such.

Links from a page to a file of the repository outside ``docs/`` (a config, a benchmark
script) work where the Markdown is read on a forge but have no target in the site: they
become links into ``repo_url`` when mkdocs.yml sets one, else the file's path in code. A link
to a file that exists nowhere is left alone, so the build reports it.

It also checks that ``docs/reference/python.md`` documents every name of the package's
public API (``_API`` in ``src/aerialseg/__init__.py``): a name missing there is a warning,
which ``mkdocs build --strict`` turns into a failure.

Building the parser imports every command module but not torch (the CLI imports torch only
when a command runs); a build that imports it is a warning too.
"""

from __future__ import annotations

import argparse
import ast
import html
import logging
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- commands -->"
log = logging.getLogger("mkdocs.hooks.reference")


def _parser() -> argparse.ArgumentParser:
    src = str(ROOT / "src")
    if src not in sys.path:  # document this checkout, whatever copy is installed
        sys.path.insert(0, src)
    from aerialseg.cli import build_parser

    return build_parser()


def _escape(s: str, also: str = "") -> str:
    return re.sub(f"([\\\\*_\\[\\]|#{also}])", r"\\\1", html.escape(s, quote=False))


def _text(s: str) -> str:
    """Help text as Markdown text: collapsed whitespace, nothing read as markup except pairs of
    backticks, which stay code spans (`segment --runtime onnx`)."""
    s = " ".join(s.split())
    if s.count("`") % 2:  # an unpaired backtick: no code spans at all
        return _escape(s, "`")
    parts = s.split("`")
    parts[::2] = [_escape(part) for part in parts[::2]]
    return "`".join(parts)


def _usage(parser: argparse.ArgumentParser) -> str:
    fmt = argparse.HelpFormatter(prog=parser.prog, width=88)
    fmt.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return fmt.format_help().strip()


def _invocation(action: argparse.Action) -> str:
    fmt = argparse.HelpFormatter(prog="aerialseg")
    return fmt._format_action_invocation(action)


def _help(action: argparse.Action) -> str:
    text = action.help or ""
    if "%" in text:
        text = argparse.HelpFormatter(prog="aerialseg")._expand_help(action)
    text = _text(text)
    extra = []
    # the choices, unless the invocation shows them ({a,b}) or the help names them all
    if action.choices is not None and action.metavar is not None:
        shown = " ".join(text.split()).lower()
        if not all(str(c).lower() in shown for c in action.choices):
            extra.append("one of " + ", ".join(f"`{c}`" for c in action.choices))
    if action.required and action.option_strings:
        extra.append("required")
    default = action.default
    if (
        action.option_strings
        and default not in (None, False, argparse.SUPPRESS)
        and "default" not in text.lower()
        and not isinstance(action, argparse._StoreConstAction | argparse._CountAction)
    ):
        value = ",".join(map(str, default)) if isinstance(default, tuple | list) else default
        extra.append(f"default `{value}`")
    if extra:
        text = f"{text} ({'; '.join(extra)})" if text else "; ".join(extra).capitalize()
    if text:
        return text
    if not action.option_strings:  # a positional argument without help: how many it takes
        counts = {"+": "one or more", "*": "any number", "?": "optional"}
        counts[argparse.REMAINDER] = "the rest of the command line"
        return counts.get(action.nargs, "required")
    return "(no description)"


def _subcommands(parser: argparse.ArgumentParser):
    """(name, help, sub-parser) of each sub-command that ``-h`` lists."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                if choice.help != argparse.SUPPRESS:
                    yield choice.dest, choice.help, action.choices[choice.dest]


def _section(parser: argparse.ArgumentParser, level: int, summary: str) -> list[str]:
    name = parser.prog.removeprefix("aerialseg ").strip()
    out = [f"{'#' * level} {name}", ""]
    if summary:
        out += [f"*{_text(summary)}*", ""]
    out += ["```text", _usage(parser), "```", ""]
    if parser.description:
        out += [_text(parser.description), ""]
    old = []
    for group in parser._action_groups:
        rows = []
        for action in group._group_actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            if getattr(action, "instead", None):  # cli.common.Deprecated
                old.append(action)
                continue
            if action.help == argparse.SUPPRESS or "--help" in action.option_strings:
                continue
            rows += [f"`{_invocation(action)}`", f":   {_help(action)}", ""]
        if rows:
            title = group.title[0].upper() + group.title[1:]
            out += [f"**{_text(title)}**", "", *rows]
    if old:
        out += ["**Old spellings** (still accepted; each prints a one-line note)", ""]
        for action in old:
            out += [f"- `{'`, `'.join(action.option_strings)}`: use `{action.instead}`"]
        out.append("")
    if parser.epilog:
        out += [_text(parser.epilog), ""]
    for _, help_, sub in _subcommands(parser):
        out += _section(sub, level + 1, help_)
    return out


def cli_markdown(parser: argparse.ArgumentParser | None = None) -> str:
    """One section per command of ``aerialseg``, in the order ``aerialseg -h`` lists them."""
    parser = parser or _parser()
    lines: list[str] = []
    for _, help_, sub in _subcommands(parser):
        lines += _section(sub, 2, help_)
    return "\n".join(lines)


def public_api() -> dict[str, str]:
    """The package's ``_API`` table (public name -> module), read without importing it."""
    tree = ast.parse((ROOT / "src" / "aerialseg" / "__init__.py").read_text())
    for node in tree.body:
        target = getattr(node, "target", None) or (getattr(node, "targets", None) or [None])[0]
        if isinstance(target, ast.Name) and target.id == "_API":
            return ast.literal_eval(node.value)
    raise LookupError("no _API table in src/aerialseg/__init__.py")


def undocumented(markdown: str) -> list[str]:
    """The public names that python.md has no ``::: aerialseg.MODULE.NAME`` line for."""
    documented = set(re.findall(r"^::: *(aerialseg(?:\.\w+)+)", markdown, re.M))
    return [
        name
        for name, module in public_api().items()
        if f"aerialseg.{module}.{name}" not in documented
    ]


LINK = re.compile(r"(?<!!)\[([^\]]*)\]\((\.\./[^)\s#]+)(#[^)\s]*)?\)")


def repository_links(markdown: str, page_uri: str, docs_dir: Path, repo_url: str | None) -> str:
    """Links to repository files outside ``docs_dir``: into ``repo_url``, else the path."""
    page_dir = (docs_dir / page_uri).parent

    def replace(m: re.Match) -> str:
        text, target, anchor = m.group(1), m.group(2), m.group(3) or ""
        path = (page_dir / target).resolve()
        if path.is_relative_to(docs_dir.resolve()) or not path.exists():
            return m.group(0)
        rel = path.relative_to(ROOT).as_posix()
        if repo_url:
            return f"[{text}]({repo_url.rstrip('/')}/blob/main/{rel}{anchor})"
        return text if rel in text else f"{text} (`{rel}`)"

    return LINK.sub(replace, markdown)


ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc):<code>(~|\.)?([\w.]+)</code>")


def sphinx_roles(html_text: str) -> str:
    """The docstrings' Sphinx cross-reference roles (``:class:`Segmenter```), which
    mkdocstrings renders as ``:class:<code>Segmenter</code>``, as plain code: the name, or
    its last part for ``~a.b.c`` and ``.relative`` targets, as Sphinx shows them."""

    def replace(m: re.Match) -> str:
        name = m.group(2).rsplit(".", 1)[-1] if m.group(1) else m.group(2)
        return f"<code>{name}</code>"

    return ROLE.sub(replace, html_text)


def on_page_content(html_text, page, config, files):
    if page.file.src_uri == "reference/python.md":
        return sphinx_roles(html_text)
    return html_text


def on_page_markdown(markdown, page, config, files):
    path = page.file.src_uri
    markdown = repository_links(markdown, path, Path(config["docs_dir"]), config.get("repo_url"))
    if path == "reference/cli.md":
        if MARKER not in markdown:
            log.warning("reference/cli.md: no %s line to put the commands in", MARKER)
            return markdown
        had_torch = "torch" in sys.modules
        markdown = markdown.replace(MARKER, cli_markdown())
        if not had_torch and "torch" in sys.modules:
            log.warning("building the command-line parser imported torch (it must not)")
    elif path == "reference/python.md":
        for name in undocumented(markdown):
            module = public_api()[name]
            log.warning(
                "reference/python.md does not document aerialseg.%s (add ::: aerialseg.%s.%s)",
                name,
                module,
                name,
            )
    return markdown
