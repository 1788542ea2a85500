"""The docs site's generated parts (docs/hooks/reference.py): the command reference comes
from the real parser, without torch; the Python reference lists every public name."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HOOK = ROOT / "docs" / "hooks" / "reference.py"


@pytest.fixture(scope="module")
def reference():
    spec = importlib.util.spec_from_file_location("docs_reference", HOOK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_command_reference_is_generated_without_importing_torch():
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('r', {str(HOOK)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "text = m.cli_markdown()\n"
        "assert '## segment' in text\n"
        "assert 'torch' not in sys.modules, 'building every parser imported torch'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def _visible(parser: argparse.ArgumentParser, prefix: str = ""):
    """(command path, option string) of every option that ``-h`` shows, sub-commands too."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                sub = action.choices[choice.dest]
                yield from _visible(sub, f"{prefix} {choice.dest}".strip())
        elif action.help != argparse.SUPPRESS and prefix and action.dest != "help":
            for option in action.option_strings:
                yield prefix, option


def test_every_command_and_visible_option_has_its_entry(reference):
    from aerialseg.cli import COMMANDS, build_parser

    parser = build_parser()
    text = reference.cli_markdown(parser)
    headings = [line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#")]
    assert [h for h in headings if " " not in h] == list(COMMANDS)
    sections = {}
    for block in ("\n" + text).split("\n#")[1:]:
        heading, _, body = block.lstrip("#").partition("\n")
        sections[heading.strip()] = body
    pairs = list(_visible(parser))
    assert len(pairs) > 100  # every command's options, not a few
    for command, option in pairs:
        entries = [line for line in sections[command].splitlines() if line.startswith("`")]
        assert any(option in e.split("`")[1].replace(",", " ").split() for e in entries), (
            command,
            option,
        )


def test_old_spellings_are_marked_not_listed_as_options(reference):
    from aerialseg.cli import build_parser

    text = reference.cli_markdown(build_parser())
    train = text.split("\n## train\n")[1].split("\n## ")[0]
    old = train.split("**Old spellings**")[1]
    assert "- `--model`: use `--arch`" in old
    options = train.split("**Old spellings**")[0]
    assert "`--model" not in options  # train's --model is the old spelling of --arch


def test_help_text_is_not_read_as_markup(reference):
    action = argparse.ArgumentParser().add_argument("--x", help="a <b> *c* [d](e) | f_g")
    assert reference._help(action) == r"a &lt;b&gt; \*c\* \[d\](e) \| f\_g"
    assert reference._text("run `a_*<b>` c_d") == r"run `a_*<b>` c\_d"  # code spans kept
    assert reference._text("an ` odd_one") == r"an \` odd\_one"
    positional = argparse.ArgumentParser().add_argument("images", nargs="+")
    assert reference._help(positional) == "one or more"


def test_the_python_reference_documents_every_public_name(reference):
    import aerialseg

    assert set(reference.public_api()) == set(aerialseg.__all__)
    page = (ROOT / "docs" / "reference" / "python.md").read_text()
    assert reference.undocumented(page) == []
    assert reference.undocumented(page.replace("::: aerialseg.config.TrainConfig", "")) == [
        "TrainConfig"
    ]


def test_links_to_repository_files_outside_docs(reference, tmp_path):
    docs = ROOT / "docs"
    md = "[the config](../configs/x.yaml), [`Makefile`](../../Makefile), [gone](../../nope.txt)"
    md += ", [a page](../how_it_works.md), ![a picture](../gui.png)"
    out = reference.repository_links(md, "tutorials/train.md", docs, None)
    assert out == (
        "[the config](../configs/x.yaml), `Makefile`, [gone](../../nope.txt)"
        ", [a page](../how_it_works.md), ![a picture](../gui.png)"
    )
    out = reference.repository_links("[run](../../Makefile#L3)", "a/b.md", docs, "https://f/o/")
    assert out == "[run](https://f/o/blob/main/Makefile#L3)"
    out = reference.repository_links("[the script](../benchmarks)", "train.md", docs, None)
    assert out == "the script (`benchmarks`)"


def test_sphinx_roles_of_the_docstrings_become_code(reference):
    html = (
        "a :class:<code>Segmenter</code>, :func:<code>~aerialseg.classes.check_known</code>"
        " and :mod:<code>.confidence</code>; :class: alone stays"
    )
    assert reference.sphinx_roles(html) == (
        "a <code>Segmenter</code>, <code>check_known</code> and <code>confidence</code>;"
        " :class: alone stays"
    )
