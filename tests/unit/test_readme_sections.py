"""Every README section between markers is written by a command that measures it: a figure
pasted by hand between markers would look generated and go stale."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"<!-- ([a-z0-9-]+):start -->")


def make_recipe(target: str) -> str:
    makefile = (ROOT / "Makefile").read_text()
    match = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n|\n)*)", makefile, re.MULTILINE)
    assert match, f"no make target {target}"
    return match.group(1).replace("\\\n", " ")


def writers() -> dict[str, str]:
    """Which command writes which section, read from the Makefile and the benchmark runner."""
    found: dict[str, str] = {}
    for target in ("evaluate", "replay"):
        for line in make_recipe(target).splitlines():
            if "--readme README.md" not in line:
                continue
            section = re.search(r"--section (\S+)", line)
            if section:
                found[section.group(1)] = f"make {target}"
            elif " evaluate " in line:
                found["forecast-quality"] = f"make {target}"
            elif " replay " in line:
                found["replay"] = f"make {target}"
    runner = (ROOT / "benchmarks" / "run_all.py").read_text()
    for name in MARKER.findall(runner):
        found[name] = "make bench"
    return found


def test_every_marked_readme_section_has_a_command_that_writes_it():
    readme = (ROOT / "README.md").read_text()
    sections = MARKER.findall(readme)
    assert len(sections) == len(set(sections)), "a README section is marked twice"
    for name in sections:
        assert readme.count(f"<!-- {name}:end -->") == 1, name
    unwritten = set(sections) - set(writers())
    assert not unwritten, f"README sections that no command writes: {sorted(unwritten)}"
    assert {"forecast-quality", "replay", "performance-table"} <= set(sections)
