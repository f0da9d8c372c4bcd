"""solutions/README.md run as printed by the README executor (tests/readme_executor.py):
every exercise's solution applied in order in a fresh clone, then the checker saying
10 of 11 done. A test file of its own: it takes a minute and a half."""

import pytest
from readme_executor import readmes_run_by, run_as_printed


@pytest.mark.parametrize("readme", readmes_run_by("test_readme_solutions"))
def test_readme_commands_print_what_the_readme_shows(readme):
    run_as_printed(readme)
