"""Writes one section of docs/RESULTS.md, leaving the others as they are.

Each example owns a section between `<!-- BEGIN name -->` and
`<!-- END name -->`; re-running the example regenerates its section.
"""

import os
import platform
import re
import sys


def machine_description():
    """A one-line description of the machine, with its current load."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPU "
        f"cores, Python {platform.python_version()}, load average "
        f"{load:.1f} at the end of the run"
    )


def command_line():
    return "python " + " ".join(sys.argv)


def update_section(path, name, content):
    """Replaces (or appends) the section `name` of the Markdown file."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{content.strip()}\n{end}"
    text = open(path).read() if os.path.exists(path) else "# Results\n"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as file:
        file.write(text)
