"""Plugin discovery: entry points, isolation of broken plugins, disabling, plugin dirs."""

import json
import sys

import pytest

from conftest import make_dist_plugin, run_cli

GOOD = '''
import torch
from imtrans import hookimpl

class Charbonnier(torch.nn.Module):
    """Charbonnier (smooth L1) reconstruction loss."""
    default_weight = 1.0
    def __init__(self, eps: float = 1e-3):
        super().__init__()
        self.eps = eps
    def forward(self, pred, target):
        return torch.sqrt((pred - target) ** 2 + self.eps ** 2).mean()

@hookimpl
def register_losses(register):
    register("charbonnier", Charbonnier)
'''

BROKEN_IMPORT = "import definitely_not_a_module_xyz\n"

BROKEN_HOOK = '''
from imtrans import hookimpl

@hookimpl
def register_losses(register):
    register("half_registered", lambda: None)
    raise RuntimeError("boom in hook")
'''

DUPLICATE = '''
from imtrans import hookimpl

@hookimpl
def register_generators(register):
    register("resnet", lambda: None)
'''


def test_dist_plugin_registers_loss(tmp_path, fresh_plugins):
    make_dist_plugin(tmp_path, "imtrans-charb", "imtrans_charb", GOOD, ep_name="charb", version="1.2.3")
    sys.path.insert(0, str(tmp_path))
    fresh_plugins.load_plugins(reload=True)
    from imtrans import registry

    entry = registry.get_registry("loss").get("charbonnier")
    assert entry.plugin == "charb"
    info = {i.name: i for i in fresh_plugins.plugin_infos()}["charb"]
    assert info.version == "1.2.3" and info.parts == {"loss": ["charbonnier"]}
    loss = registry.build("loss", "charbonnier", eps=0.5)
    import torch

    assert float(loss(torch.zeros(2), torch.zeros(2))) == pytest.approx(0.5)


def test_cli_list_shows_plugin_loss_with_plugin_name(tmp_path):
    make_dist_plugin(tmp_path, "imtrans-charb", "imtrans_charb", GOOD, ep_name="charb")
    r = run_cli("list", "loss", env={"PYTHONPATH": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    line = next(l for l in r.stdout.splitlines() if "charbonnier" in l)
    assert "charb" in line.replace("charbonnier", "") and "Charbonnier (smooth L1)" in line


def test_broken_plugins_are_reported_and_skipped(tmp_path, fresh_plugins):
    make_dist_plugin(tmp_path / "a", "bad-import", "bad_import_mod", BROKEN_IMPORT, ep_name="badimport")
    make_dist_plugin(tmp_path / "b", "bad-hook", "bad_hook_mod", BROKEN_HOOK, ep_name="badhook")
    make_dist_plugin(tmp_path / "c", "imtrans-charb", "imtrans_charb2", GOOD, ep_name="charb")
    for d in "abc":
        sys.path.insert(0, str(tmp_path / d))
    from imtrans import registry

    with pytest.warns(fresh_plugins.PluginWarning):
        infos = {i.name: i for i in fresh_plugins.load_plugins(reload=True)}
    assert "failed to import" in infos["badimport"].error and "definitely_not_a_module_xyz" in infos["badimport"].error
    assert "boom in hook" in infos["badhook"].error
    # the failing plugin's partial registrations were removed; the others work
    assert "half_registered" not in registry.names("loss")
    assert "charbonnier" in registry.names("loss")
    assert "resnet" in registry.names("generator")


def test_cli_plugins_json_lists_errors_and_keeps_working(tmp_path):
    make_dist_plugin(tmp_path, "bad-import", "bad_import_mod2", BROKEN_IMPORT, ep_name="badimport")
    r = run_cli("plugins", "--json", env={"PYTHONPATH": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    data = {p["name"]: p for p in json.loads(r.stdout)}
    assert data["builtin"]["error"] is None and "resnet" in data["builtin"]["parts"]["generator"]
    assert "failed to import" in data["badimport"]["error"]
    assert r.stderr.count("plugin 'badimport' was skipped") == 1  # reported once


def test_duplicate_name_names_both_plugins(tmp_path, fresh_plugins):
    make_dist_plugin(tmp_path, "dup", "dup_mod", DUPLICATE, ep_name="dupe")
    sys.path.insert(0, str(tmp_path))
    with pytest.warns(fresh_plugins.PluginWarning):
        infos = {i.name: i for i in fresh_plugins.load_plugins(reload=True)}
    err = infos["dupe"].error
    assert "generator 'resnet'" in err and "'builtin'" in err and "'dupe'" in err


WRONG_ARGUMENT = """
from imtrans import hookimpl


@hookimpl
def register_losses(reg):
    pass
"""


def test_a_wrong_hook_argument_name_is_one_sentence(tmp_path, fresh_plugins):
    """pluggy says it in three lines ("hookimpl definition: ... can not be found in the hookspec")."""
    make_dist_plugin(tmp_path, "imtrans-wrongarg", "wrongarg_mod", WRONG_ARGUMENT, ep_name="wrongarg")
    sys.path.insert(0, str(tmp_path))
    with pytest.warns(fresh_plugins.PluginWarning):
        infos = {i.name: i for i in fresh_plugins.load_plugins(reload=True)}
    err = infos["wrongarg"].error
    assert err == ("invalid plugin: its hook 'register_losses' takes (reg) but imtrans calls it with (register); "
                   "rename 'reg' to match")


def test_disable_by_env_and_option(tmp_path):
    make_dist_plugin(tmp_path, "imtrans-charb", "imtrans_charb3", GOOD, ep_name="charb")
    env = {"PYTHONPATH": str(tmp_path), "IMTRANS_DISABLE_PLUGINS": "charb"}
    r = run_cli("plugins", "--json", env=env)
    assert {p["name"]: p for p in json.loads(r.stdout)}["charb"]["disabled"] is True
    r = run_cli("--disable-plugin", "charb", "list", "loss", env={"PYTHONPATH": str(tmp_path)})
    assert r.returncode == 0 and "charbonnier" not in r.stdout


def test_plugins_dir_loads_plain_files(tmp_path):
    (tmp_path / "myloss.py").write_text(GOOD)
    r = run_cli("--plugins-dir", str(tmp_path), "list", "loss")
    assert r.returncode == 0, r.stderr
    assert "charbonnier" in r.stdout and "myloss" in r.stdout


def test_incompatible_api_is_skipped_with_message(tmp_path, fresh_plugins):
    make_dist_plugin(tmp_path, "future", "future_mod", "IMTRANS_API = [99]\n" + GOOD, ep_name="future")
    sys.path.insert(0, str(tmp_path))
    with pytest.warns(fresh_plugins.PluginWarning):
        infos = {i.name: i for i in fresh_plugins.load_plugins(reload=True)}
    assert "supports imtrans plugin API [99]" in infos["future"].error
    from imtrans import registry

    assert "charbonnier" not in registry.names("loss")


def test_plugin_can_add_cli_command(tmp_path):
    src = '''
from imtrans import hookimpl

@hookimpl
def register_commands(app):
    @app.command("hello")
    def hello(name: str = "world"):
        """Say hello."""
        print(f"hello {name}")
'''
    (tmp_path / "hello.py").write_text(src)
    r = run_cli("--plugins-dir", str(tmp_path), "hello", "--name", "imtrans")
    assert r.returncode == 0, r.stderr
    assert "hello imtrans" in r.stdout


def test_loads_from_two_threads_do_not_overlap(fresh_plugins, monkeypatch):
    """Two threads reloading the plugins at once (a demo server's workers) load one after the other:
    each load builds and installs a whole set of registries before the next one starts."""
    import threading
    import time

    real, lock = fresh_plugins._load_one, threading.Lock()
    active, most = [0], [0]

    def slow_load_one(*args, **kwargs):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.02)  # long enough that an unguarded second thread would be inside too
        try:
            return real(*args, **kwargs)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(fresh_plugins, "_load_one", slow_load_one)
    threads = [threading.Thread(target=fresh_plugins.load_plugins, kwargs={"reload": True}) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1
    from imtrans import registry

    assert "resnet" in registry.names("generator")
