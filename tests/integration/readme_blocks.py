"""readme_blocks.py — the runnable code blocks of a Markdown file, for the tests that run the
READMEs' examples as written (test_readme_examples.py: Python; test_typescript_readme.py:
TypeScript).
Owns: what counts as a runnable block (a fenced block of the language, unless the line before
it is a `<!-- not run: why -->` comment). Must never: run anything."""
from __future__ import annotations

import re
from pathlib import Path


def code_blocks(path: Path, languages: tuple[str, ...]) -> list[tuple[int, str]]:
    """(line number, code) of each runnable block fenced as one of `languages`."""
    fence = "|".join(re.escape(lang) for lang in languages)
    block = re.compile(rf"(?P<before>(?:^[^\n]*\n)?)^```(?:{fence})\n(?P<code>.*?)^```\n", re.M | re.S)
    text = path.read_text()
    return [(text.count("\n", 0, m.start("code")) + 1, m.group("code"))
            for m in block.finditer(text) if "<!-- not run" not in m.group("before")]
