"""Plugin discovery and loading.

Plugins come from three places, loaded in this order:

1. the built-in plugin (``imtrans.builtin``), also declared as an entry point;
2. installed packages exposing an entry point in the group ``imtrans``;
3. plain ``.py`` files in directories given with ``--plugins-dir`` (quick experiments).

Each plugin is loaded and asked to register its parts *on its own*: one that
fails to import, declares an incompatible API version or raises inside a hook
is recorded with its reason, its parts are removed again, and every other
plugin keeps working.  ``IMTRANS_DISABLE_PLUGINS=a,b`` skips plugins by name.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata as md
import importlib.util
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from imtrans import hookspecs
from imtrans.registry import _REGISTRIES

#: The plugin API version this imtrans provides.  Plugins may declare the
#: versions they support with ``IMTRANS_API = [1]``.
API_VERSION = 1

ENTRY_POINT_GROUP = "imtrans"
BUILTIN = "builtin"

# hook name -> registry kind it fills
REGISTER_HOOKS = {
    "register_generators": "generator",
    "register_discriminators": "discriminator",
    "register_losses": "loss",
    "register_augmentations": "augmentation",
    "register_domains": "domain",
    "register_schemes": "scheme",
    "register_pretrained": "pretrained",
}


class PluginWarning(UserWarning):
    """A plugin could not be loaded and was skipped."""


@dataclass
class PluginInfo:
    """What ``imtrans plugins`` reports about one plugin."""

    name: str
    source: str  # "builtin", "entry point", "file"
    version: str = ""
    distribution: str = ""
    location: str = ""
    parts: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None
    disabled: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "version": self.version,
            "distribution": self.distribution,
            "location": self.location,
            "parts": self.parts,
            "error": self.error,
            "disabled": self.disabled,
        }


class _State:
    def __init__(self) -> None:
        self.pm: pluggy.PluginManager | None = None
        self.infos: dict[str, PluginInfo] = {}
        self.disabled: set[str] = set()
        self.plugin_dirs: list[Path] = []
        self.loaded = False
        self.extra_plugins: list[tuple[str, Any]] = []


_state = _State()


def configure(*, disable: list[str] | None = None, plugins_dirs: list[str | Path] | None = None) -> None:
    """Set options before plugins load (the CLI calls this from its global options)."""
    if disable:
        _state.disabled.update(d.strip() for d in disable if d.strip())
    if plugins_dirs:
        _state.plugin_dirs.extend(Path(p) for p in plugins_dirs)
    if _state.loaded:
        reset()


def register_plugin(name: str, plugin: Any) -> None:
    """Register an in-process plugin object (tests, notebooks); reloads the registries."""
    _state.extra_plugins.append((name, plugin))
    if _state.loaded:
        reset()


def reset() -> None:
    """Forget every loaded plugin and part; the next registry use loads them again."""
    for reg in _REGISTRIES.values():
        reg._entries.clear()
    _state.pm = None
    _state.infos = {}
    _state.loaded = False


def _env_disabled() -> set[str]:
    raw = os.environ.get("IMTRANS_DISABLE_PLUGINS", "")
    return {x.strip() for x in raw.split(",") if x.strip()}


def _api_error(name: str, module: Any) -> str | None:
    wanted = getattr(module, "IMTRANS_API", None)
    if wanted is None:
        return None
    if isinstance(wanted, int):
        wanted = [wanted]
    try:
        ok = API_VERSION in [int(w) for w in wanted]
    except (TypeError, ValueError):
        return f"its IMTRANS_API = {wanted!r} is not a list of integers; set e.g. IMTRANS_API = [{API_VERSION}]"
    if not ok:
        return (
            f"it supports imtrans plugin API {list(wanted)} but this imtrans provides API {API_VERSION}; "
            f"install a version of the plugin made for API {API_VERSION}"
        )
    return None


def _load_one(pm: pluggy.PluginManager, info: PluginInfo, loader) -> None:
    """Import one plugin and run its register hooks, isolating any failure."""
    _state.infos[info.name] = info
    if info.name in _state.disabled or info.name in _env_disabled():
        info.disabled = True
        return
    try:
        module = loader()
    except Exception as e:  # noqa: BLE001 - any import failure is reported, not raised
        info.error = f"failed to import: {type(e).__name__}: {e}"
        return
    err = _api_error(info.name, module)
    if err:
        info.error = err
        return
    if not info.version:
        info.version = str(getattr(module, "__version__", "") or "")
    try:
        pm.register(module, name=info.name)
    except Exception as e:  # noqa: BLE001
        info.error = f"invalid plugin: {type(e).__name__}: {e}"
        return
    try:
        for hook, kind in REGISTER_HOOKS.items():
            for impl in getattr(pm.hook, hook).get_hookimpls():
                if impl.plugin_name != info.name:
                    continue
                reg = _REGISTRIES[kind]
                register = functools.partial(reg.register, plugin=info.name)
                impl.function(register=register)
    except Exception as e:  # noqa: BLE001
        info.error = f"{type(e).__name__} in a register hook: {e}"
        for reg in _REGISTRIES.values():
            reg.unregister_plugin(info.name)
        pm.unregister(name=info.name)
        return
    for kind, reg in _REGISTRIES.items():
        got = [en.name for en in reg.entries() if en.plugin == info.name]
        if got:
            info.parts[kind] = got


def _load_file_plugin(path: Path):
    mod_name = f"imtrans_local_plugins.{path.stem}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    spec.loader.exec_module(module)
    return module


def ensure_loaded() -> pluggy.PluginManager:
    """Load every plugin once (idempotent) and return the plugin manager."""
    if _state.loaded and _state.pm is not None:
        return _state.pm
    pm = pluggy.PluginManager("imtrans")
    pm.add_hookspecs(hookspecs)
    _state.pm = pm
    _state.loaded = True  # set early: hooks that build parts must not recurse into loading
    _state.infos = {}

    eps = list(md.entry_points(group=ENTRY_POINT_GROUP))
    # The built-in plugin always loads first (also when imtrans runs from a source tree
    # without installed metadata), so third-party duplicates are the ones reported.
    builtin_ep = next((ep for ep in eps if ep.name == BUILTIN), None)
    import imtrans

    _load_one(
        pm,
        PluginInfo(BUILTIN, "builtin", version=imtrans.__version__, distribution="imtrans",
                   location="imtrans.builtin"),
        (builtin_ep.load if builtin_ep is not None else (lambda: importlib.import_module("imtrans.builtin"))),
    )
    seen = {BUILTIN}
    for ep in eps:
        if ep.name in seen:
            continue
        seen.add(ep.name)
        dist = getattr(ep, "dist", None)
        info = PluginInfo(
            ep.name,
            "entry point",
            version=(dist.version if dist is not None else ""),
            distribution=(dist.metadata["Name"] if dist is not None else ""),
            location=ep.value,
        )
        _load_one(pm, info, ep.load)
    for d in _state.plugin_dirs:
        if not d.is_dir():
            _state.infos[str(d)] = PluginInfo(str(d), "file", error=f"plugins directory {d} does not exist")
            continue
        for f in sorted(d.glob("*.py")):
            if f.name.startswith("_") or f.stem in seen:
                continue
            seen.add(f.stem)
            _load_one(pm, PluginInfo(f.stem, "file", location=str(f)), functools.partial(_load_file_plugin, f))
    for name, obj in _state.extra_plugins:
        if name not in seen:
            seen.add(name)
            _load_one(pm, PluginInfo(name, "object", location=repr(obj)), lambda obj=obj: obj)

    for info in _state.infos.values():
        if info.error:
            warnings.warn(f"plugin '{info.name}' was skipped: {info.error}", PluginWarning, stacklevel=2)
    return pm


def plugin_infos() -> list[PluginInfo]:
    """Every plugin seen, in load order, with its parts and any load error."""
    ensure_loaded()
    return list(_state.infos.values())


def load_errors() -> list[PluginInfo]:
    return [i for i in plugin_infos() if i.error]


def plugin_manager() -> pluggy.PluginManager:
    return ensure_loaded()
