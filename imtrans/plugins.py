"""Plugin discovery and loading: :func:`load_plugins`, called by the entry points.

Plugins come from four places, loaded in this order:

1. the built-in plugin (``imtrans.builtin``), also declared as an entry point;
2. installed packages exposing an entry point in the group ``imtrans``;
3. plain ``.py`` files in directories given with ``--plugins-dir`` (quick experiments);
4. plugin objects handed to ``load_plugins(objects=...)`` (tests, notebooks).

Nothing loads plugins behind a caller's back: only the entry points, the CLI and
the public functions of :mod:`imtrans` (``load_translator``, ``load_recipe``,
``train``), call :func:`load_plugins` (idempotent), as a library user
does before building parts.  Each plugin is imported and its ``register_*``
hooks run through its own pluggy manager (``pm.hook``) into scratch
registries, merged into the real ones only when every hook succeeded: a
plugin that fails to import, declares an incompatible API, raises in a hook
or clashes with another plugin's names is recorded with its reason (and
traceback) and leaves nothing behind.  Mistakes that do not stop a plugin
(a misspelled hook, a hook function without ``@hookimpl``, a plugin that
registers nothing, a type hint that cannot be resolved) are kept as warnings.
``IMTRANS_DISABLE_PLUGINS=a,b`` skips plugins by name.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata as md
import importlib.util
import os
import sys
import threading
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import pluggy

from imtrans import hookspecs, registry
from imtrans.errors import ImtransWarning
from imtrans.suggest import did_you_mean

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
    "register_d_augmentations": "d_augment",
    "register_domains": "domain",
    "register_schemes": "scheme",
    "register_feature_extractors": "feature_extractor",
    "register_pretrained": "pretrained",
    "register_loggers": "logger",
}
HOOKS = (*REGISTER_HOOKS, "register_commands")


class PluginWarning(ImtransWarning):
    """A plugin could not be loaded and was skipped, or loaded with a problem worth fixing."""


@dataclass
class PluginInfo:
    """What ``imtrans plugins`` reports about one plugin."""

    name: str
    source: str  # "builtin", "entry point", "file", "object"
    version: str = ""
    distribution: str = ""
    location: str = ""
    parts: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None
    disabled: bool = False
    #: problems that did not stop the plugin (unknown hook names, nothing registered...)
    warnings: list[str] = field(default_factory=list)
    #: the full traceback of ``error`` (``imtrans --verbose`` / ``IMTRANS_DEBUG=1`` show it)
    traceback: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "source": self.source, "version": self.version,
            "distribution": self.distribution, "location": self.location, "parts": self.parts,
            "error": self.error, "disabled": self.disabled, "warnings": list(self.warnings),
            "traceback": self.traceback,
        }


@dataclass
class _Loaded:
    """The outcome of one :func:`load_plugins`: what loaded, and a manager per plugin."""

    options: tuple[Any, ...]
    #: the part kinds whose register hooks ran (``None``: all of them, the complete load)
    kinds: frozenset[str] | None = None
    infos: dict[str, PluginInfo] = field(default_factory=dict)
    managers: dict[str, pluggy.PluginManager] = field(default_factory=dict)


_loaded: _Loaded | None = None
# One load at a time: two threads (e.g. a demo server's workers) loading at once would each build
# registries and install them in turn, and a part could be looked up in a half-built set.
_load_lock = threading.RLock()


def _env_disabled() -> set[str]:
    raw = os.environ.get("IMTRANS_DISABLE_PLUGINS", "")
    return {x.strip() for x in raw.split(",") if x.strip()}


def _api_error(module: Any) -> str | None:
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


def _new_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("imtrans")
    pm.add_hookspecs(hookspecs)
    return pm


def _validation_message(module: Any, err: pluggy.PluginValidationError) -> str:
    """pluggy's several-line complaint as one sentence: which hook takes which wrong argument names."""
    import inspect

    for name in HOOKS:
        fn, spec = getattr(module, name, None), getattr(hookspecs, name, None)
        if not callable(fn) or spec is None:
            continue
        got = [a for a in inspect.signature(fn).parameters if a != "self"]
        want = list(inspect.signature(spec).parameters)
        unknown = [a for a in got if a not in want]
        if unknown:
            return (f"its hook '{name}' takes ({', '.join(got)}) but imtrans calls it with ({', '.join(want)}); "
                    f"rename {', '.join(repr(a) for a in unknown)} to match")
    return " ".join(str(err).split())  # another validation problem: pluggy's text, on one line


def _hook_warnings(pm: pluggy.PluginManager, module: Any) -> list[str]:
    """Misspelled hooks (pluggy's ``check_pending``) and hook functions missing ``@hookimpl``."""
    out = []
    try:
        pm.check_pending()
    except pluggy.PluginValidationError:
        for name, caller in vars(pm.hook).items():  # name every unknown hook, not only the first
            if not name.startswith("_") and not caller.has_spec() and caller.get_hookimpls():
                out.append(f"'{name}' is not an imtrans hook{did_you_mean(name, HOOKS)}; it is never called")
    marked = {c.name for c in pm.get_hookcallers(module) or []}
    for name in HOOKS:
        if callable(getattr(module, name, None)) and name not in marked:
            out.append(f"function '{name}' is not marked @hookimpl (from imtrans import hookimpl); it is never called")
    return out


def _register_parts(info: PluginInfo, module: Any,
                    kinds: frozenset[str] | None = None) -> tuple[pluggy.PluginManager, dict[str, registry.Registry]]:
    """Run one plugin's register hooks (those of ``kinds``, default all) through its own manager into scratch registries.

    Each entry records the plugin's name, distribution and version as it is registered,
    so provenance needs nothing but the registry.
    """
    pm = _new_manager()
    pm.register(module, name=info.name)
    scratch = registry.new_registries()
    for hook, kind in REGISTER_HOOKS.items():
        if kinds is None or kind in kinds:
            register = functools.partial(scratch[kind].register, plugin=info.name, dist=info.distribution,
                                         version=info.version)
            getattr(pm.hook, hook)(register=register)
    return pm, scratch


def _fail(info: PluginInfo, message: str) -> None:
    info.error = message
    info.traceback = traceback.format_exc()


def _load_one(loaded: _Loaded, regs: dict[str, registry.Registry], info: PluginInfo,
              loader: Callable[[], Any], disabled: set[str]) -> None:
    """Import one plugin and merge its parts, isolating any failure."""
    loaded.infos[info.name] = info
    if info.name in disabled:
        info.disabled = True
        return
    try:
        module = loader()
    except Exception as e:  # noqa: BLE001 - any import failure is reported, not raised
        return _fail(info, f"failed to import: {type(e).__name__}: {e}")
    err = _api_error(module)
    if err:
        info.error = err
        return
    if not info.version:
        info.version = str(getattr(module, "__version__", "") or "")
    try:
        pm, scratch = _register_parts(info, module, loaded.kinds)
    except pluggy.PluginValidationError as e:
        return _fail(info, f"invalid plugin: {_validation_message(module, e)}")
    except Exception as e:  # noqa: BLE001
        return _fail(info, f"{type(e).__name__} in a register hook: {e}")
    try:
        registry.merge_all(regs, scratch)
    except registry.DuplicatePartError as e:
        return _fail(info, str(e))
    info.parts = {kind: reg.names() for kind, reg in scratch.items() if reg.names()}
    info.warnings = _hook_warnings(pm, module)
    info.warnings += [w for reg in scratch.values() for en in reg.entries() for w in en.warnings]
    if loaded.kinds is None and not info.parts and not pm.hook.register_commands.get_hookimpls():
        info.warnings.append("it registered no parts and no commands; check its hook names and @hookimpl markers")
    loaded.managers[info.name] = pm


def _load_file_plugin(path: Path):
    mod_name = f"imtrans_local_plugins.{path.stem}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    spec.loader.exec_module(module)
    return module


def _candidates(dirs: tuple[Path, ...], objects: tuple[tuple[str, Any], ...]):
    """(PluginInfo, loader) for every plugin, in load order, each name once."""
    from imtrans._version import __version__

    eps = list(md.entry_points(group=ENTRY_POINT_GROUP))
    # The built-in plugin always loads first (also when imtrans runs from a source tree
    # without installed metadata), so third-party duplicates are the ones reported.
    builtin_ep = next((ep for ep in eps if ep.name == BUILTIN), None)
    yield (PluginInfo(BUILTIN, "builtin", version=__version__, distribution="imtrans",
                      location="imtrans.builtin"),
           builtin_ep.load if builtin_ep is not None else (lambda: importlib.import_module("imtrans.builtin")))
    seen = {BUILTIN}
    for ep in eps:
        if ep.name not in seen:
            seen.add(ep.name)
            dist = getattr(ep, "dist", None)
            yield (PluginInfo(ep.name, "entry point", version=(dist.version if dist is not None else ""),
                              distribution=(dist.metadata["Name"] if dist is not None else ""), location=ep.value),
                   ep.load)
    for d in dirs:
        if not d.is_dir():
            yield PluginInfo(str(d), "file"), functools.partial(_missing_dir, d)
            continue
        for f in sorted(d.glob("*.py")):
            if not f.name.startswith("_") and f.stem not in seen:
                seen.add(f.stem)
                yield PluginInfo(f.stem, "file", location=str(f)), functools.partial(_load_file_plugin, f)
    for name, obj in objects:
        if name not in seen:
            seen.add(name)
            yield PluginInfo(name, "object", location=repr(obj)), (lambda obj=obj: obj)


def _missing_dir(d: Path) -> None:
    raise FileNotFoundError(f"plugins directory {d} does not exist")


def load_plugins(
    *,
    disable: Iterable[str] | None = None,
    plugins_dirs: Iterable[str | Path] | None = None,
    objects: dict[str, Any] | None = None,
    reload: bool = False,
    kinds: Iterable[str] | None = None,
) -> list[PluginInfo]:
    """Load every plugin into the registries, once; return what was found, in load order.

    Later calls return the first load's result unless ``reload`` is true or
    they ask for other options: ``disable`` plugin names (plus
    ``IMTRANS_DISABLE_PLUGINS``), ``plugins_dirs`` of plain ``.py`` plugins,
    ``objects`` (name -> module or object with hook functions).  Problems are
    reported once as :class:`PluginWarning` and in the returned infos.

    ``kinds``: run only the register hooks of these part kinds (``()``: none; every plugin is still
    imported, so its commands can be added).  Quick commands use this (``--help`` imports no torch,
    ``pretrained list`` only the catalogue); the next call without ``kinds`` completes the load,
    with the same options.
    """
    options = (frozenset(disable or ()), tuple(Path(d) for d in plugins_dirs or ()),
               tuple((objects or {}).items()))
    asked = any(x is not None for x in (disable, plugins_dirs, objects))
    wanted = None if kinds is None else frozenset(registry._check_kind(k) for k in kinds)
    with _load_lock:
        if _loaded is not None and not reload:
            if not asked:
                options = _loaded.options  # e.g. the CLI's --disable-plugin, when a command completes the load
            done = _loaded.kinds is None or (wanted is not None and wanted <= _loaded.kinds)
            if options == _loaded.options and done:
                return list(_loaded.infos.values())
            if options == _loaded.options and wanted is not None and _loaded.kinds is not None:
                wanted |= _loaded.kinds  # another partial load: keep what the last one registered
        return _load(options, wanted)


def _load(options: tuple, kinds: frozenset[str] | None = None) -> list[PluginInfo]:
    global _loaded
    before = _loaded
    loaded = _Loaded(options, kinds)
    regs = registry.new_registries()
    off = set(options[0]) | _env_disabled()
    for info, loader in _candidates(options[1], options[2]):
        _load_one(loaded, regs, info, loader, off)
    registry.install(regs)
    _loaded = loaded
    said = set()
    if before is not None and before.kinds is not None and before.options == options:
        said = {m for i in before.infos.values() for m in problems(i)}  # a partial load reported these
    for info in loaded.infos.values():
        for msg in problems(info):
            if msg not in said:
                warnings.warn(msg, PluginWarning, stacklevel=3)  # the caller of load_plugins
    return list(loaded.infos.values())


def problems(info: PluginInfo) -> list[str]:
    """One line per problem of a plugin: its load error, else its warnings."""
    if info.error:
        return [f"plugin '{info.name}' was skipped: {info.error}"]
    return [f"plugin '{info.name}': {w}" for w in info.warnings]


def plugin_infos() -> list[PluginInfo]:
    """Every plugin seen, in load order, with its parts, warnings and any load error."""
    return load_plugins()


def load_errors() -> list[PluginInfo]:
    return [i for i in plugin_infos() if i.error]


def add_commands(app: Any) -> list[str]:
    """Run each loaded plugin's ``register_commands(app)``; one message per plugin that failed."""
    load_plugins(kinds=())  # commands need the plugins imported, not their parts
    assert _loaded is not None
    failed = []
    for name, pm in _loaded.managers.items():
        try:
            pm.hook.register_commands(app=app)
        except Exception as e:  # noqa: BLE001 - a broken plugin must not break the CLI
            failed.append(f"plugin '{name}' failed to add its commands ({type(e).__name__}: {e}); skipped")
    return failed


def part_origin(kind: str, name: str) -> dict[str, str]:
    """Which plugin, distribution and version provide a registered part (``{}`` if none does).

    Read from the registry entry, which records its origin when it is registered.
    """
    return registry.part_origin(kind, name)
