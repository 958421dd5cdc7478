"""CLI basics: help, version, exit codes."""

from conftest import run_cli


def test_python_m_help_lists_commands():
    r = run_cli("--help")
    assert r.returncode == 0
    for cmd in ("run", "translate", "list", "plugins", "check", "export", "import-weights", "data"):
        assert cmd in r.stdout, cmd


def test_version():
    import imtrans

    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"imtrans {imtrans.__version__}"


def test_usage_error_exits_2_and_user_error_exits_1(tmp_path):
    assert run_cli("no-such-command").returncode == 2
    r = run_cli("run", str(tmp_path / "missing.toml"))
    assert r.returncode == 1
    assert "does not exist" in r.stderr and "Traceback" not in r.stderr


def test_list_shows_every_builtin_part_with_doc():
    r = run_cli("list")
    assert r.returncode == 0
    from imtrans import registry

    for e in registry.describe():
        assert e.name in r.stdout, e.name
        assert e.summary, f"{e.kind} {e.name} has no docstring"
    r = run_cli("list", "genrator")
    assert r.returncode == 1 and "did you mean 'generator'" in r.stderr


def test_resume_takes_an_optional_run_dir():
    from imtrans.cli import _optional_value

    assert _optional_value(["run", "r.toml", "--resume"], "--resume", "auto") == ["run", "r.toml", "--resume", "auto"]
    assert _optional_value(["run", "r.toml", "--resume", "--no-progress"], "--resume", "auto")[3] == "auto"
    assert _optional_value(["run", "r.toml", "--resume", "runs/x"], "--resume", "auto") == ["run", "r.toml", "--resume", "runs/x"]


def test_help_screens_show_no_python_types_for_flags_and_lists():
    for args in (("--help",), ("run", "-h"), ("check", "--help"), ("translate", "--help")):
        r = run_cli(*args)
        assert r.returncode == 0, args
        assert "<bool>" not in r.stdout and "<list[" not in r.stdout, (args, r.stdout)
        assert "-h" in r.stdout and "--help" in r.stdout
    assert "KEY=VALUE" in run_cli("run", "--help").stdout


QUICK_PROBE = """
import sys
from imtrans.cli import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    code = e.code
heavy = sorted(m for m in ("torch", "torchvision", "numpy", "kornia") if m in sys.modules)
print("HEAVY", ",".join(heavy) or "-", "CODE", code)
"""


def test_help_version_and_the_zoo_catalogue_import_no_torch():
    """They answer at once: importing torch alone takes seconds on a small machine."""
    import os
    import subprocess
    import sys

    from conftest import ROOT

    env = dict(os.environ, COLUMNS="200")
    for args in (["--help"], ["--version"], [], ["run", "--help"], ["translate", "-h"], ["pretrained", "list"],
                 ["pretrained", "info", "horse2zebra"], ["--disable-plugin", "cut", "pretrained", "list"]):
        r = subprocess.run([sys.executable, "-c", QUICK_PROBE, *args], capture_output=True, text=True, cwd=ROOT,
                           env=env, timeout=120)
        assert r.stdout.strip().splitlines()[-1] in ("HEAVY - CODE 0", "HEAVY - CODE 2"), (args, r.stdout[-500:], r.stderr)
        if args[:1] == ["pretrained"]:
            assert "horse2zebra" in r.stdout and "46 MB" in r.stdout, r.stdout
    # plugin commands are still listed (their plugins are imported; their parts are not registered)
    assert "pretrained" in run_cli("--help").stdout


def test_list_and_plugins_import_no_torchvision():
    """Registering the parts imports torch and the networks, not torchvision (seconds more): the FID network
    is imported when an extractor is built."""
    import os
    import subprocess
    import sys

    from conftest import ROOT

    for args in (["list"], ["plugins"]):
        r = subprocess.run([sys.executable, "-c", QUICK_PROBE, *args], capture_output=True, text=True, cwd=ROOT,
                           env=dict(os.environ, COLUMNS="200"), timeout=120)
        last = r.stdout.strip().splitlines()[-1]
        assert last.endswith("CODE 0") and "torch" in last and "torchvision" not in last, (args, last, r.stderr)
