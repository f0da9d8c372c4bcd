"""spark/README.md and dvc_pipeline/README.md run as printed by the README executor
(tests/readme_executor.py): a test file of their own, so that another pytest-xdist
worker runs them while README.md's commands run."""

import pytest
from readme_executor import readmes_run_by, run_as_printed


@pytest.mark.parametrize("readme", readmes_run_by("test_readme_folders"))
def test_readme_commands_print_what_the_readme_shows(readme):
    run_as_printed(readme)
