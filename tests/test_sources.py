"""Source hygiene: no control characters in tracked text sources (a formula saved with `\\f` in a
Python string becomes a form feed followed by "rac", and renders broken without any warning)."""
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUFFIXES = (".py", ".md", ".yml", ".yaml", ".toml", ".bib", ".cfg")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # all but tab (\x09) and newline (\x0a)


def tracked_sources() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"not a git checkout: {exc}")
    return [f for f in out.stdout.split("\0") if f.endswith(SUFFIXES)]


def control_characters(text: str) -> list[str]:
    """'line L, column C: U+XXXX' for each control character other than tab and newline."""
    found = []
    for number, line in enumerate(text.split("\n"), 1):
        for m in CONTROL.finditer(line):
            found.append(f"line {number}, column {m.start() + 1}: U+{ord(m.group()):04X}")
    return found


def test_the_check_finds_a_saved_escape():
    assert control_characters("$\\frac{a}{b}$\n\tok") == []
    assert control_characters("$\frac{a}{b}$") == ["line 1, column 2: U+000C"]
    assert control_characters("a\r\nb") == ["line 1, column 2: U+000D"]


def test_no_control_characters_in_sources():
    files = tracked_sources()
    assert any(f.endswith(".md") for f in files) and any(f.endswith(".py") for f in files)
    bad = {}
    for name in files:
        path = ROOT / name
        if path.is_file():
            found = control_characters(path.read_text(encoding="utf-8", errors="replace"))
            if found:
                bad[name] = found[:3]
    assert not bad, f"control characters (a formula saved through an unescaped \\f or \\r?): {bad}"
