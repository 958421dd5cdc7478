"""CI runs exactly the test command that README.md gives, and that command runs the fast suite in parallel."""

import re

from conftest import ROOT


def readme_test_command() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"Install and run the tests \(this is exactly what CI runs.*?```bash\n(.*?)\n```", text, re.S)
    assert m, "README.md lost its 'Install and run the tests' block"
    return m.group(1).strip()


def test_ci_runs_the_readme_test_command():
    ci = [l for l in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines() if l and not l.startswith(("#", "set ", "cd "))]
    assert ci == [readme_test_command()]


def test_the_command_installs_the_plugins_and_skips_slow_tests_in_parallel():
    cmd = readme_test_command()
    for part in ("'.[dev,export,demo,video]'", "-e plugins/imtrans-cut", "-e plugins/imtrans-textures", "-n auto", '-m "not slow"'):
        assert part in cmd, part
