"""The pins: pyproject.toml (for uv) and the requirements files (for pip) name the same versions."""

import re
import tomllib

from conftest import REPO_ROOT

PIN = re.compile(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)$")


def requirement_pins(path):
    """Every ``name==version`` in a requirements file and the files it includes with ``-r``."""
    pins = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            pins |= requirement_pins(path.parent / line[3:].strip())
        elif line:
            assert PIN.match(line), f"{path.name}: '{line}' is not pinned exactly"
            pins.add(line)
    return pins


def test_pyproject_and_requirements_pin_the_same_versions():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    workshop = set(project["project"]["dependencies"])
    groups = project["dependency-groups"]
    assert workshop == requirement_pins(REPO_ROOT / "requirements.txt")
    everything = workshop | {pin for group in groups.values() for pin in group}
    assert everything == requirement_pins(REPO_ROOT / "requirements-dev.txt")
    for pin in everything:
        assert PIN.match(pin), f"pyproject.toml: '{pin}' is not pinned exactly"
