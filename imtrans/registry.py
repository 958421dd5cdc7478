"""Registries of parts: one obvious way to name, find and build a part.

Every kind of part (generator, discriminator, loss, augmentation, d_augment, domain, scheme...)
has one :class:`Registry`.  Plugins fill them through hooks (see
:mod:`imtrans.hookspecs`); the built-in parts arrive the same way.  A part is any
callable (usually an ``nn.Module`` class) whose keyword parameters are checked
by a pydantic model *before* it is built, so a bad recipe fails with a sentence,
not half-way through a constructor.

Typical use::

    from imtrans import registry
    from imtrans.plugins import load_plugins

    load_plugins()                  # the entry points do this; registries are empty before
    G = registry.build("generator", "resnet", n_blocks=6, ngf=32)
    registry.names("loss")          # ['cycle', 'gan', ...]
"""

from __future__ import annotations

import inspect
import re
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, Iterable

import pydantic

from imtrans.errors import ImtransError
from imtrans.suggest import did_you_mean

KINDS: tuple[str, ...] = (
    "generator", "discriminator", "loss", "augmentation", "d_augment", "domain", "scheme", "pretrained",
    "feature_extractor", "logger",
)


class UnknownPartError(ImtransError):
    """A part name that no plugin registered."""


class DuplicatePartError(ImtransError):
    """Two plugins registered the same name for the same kind."""


class PartParamsError(ImtransError):
    """A part was given parameters it does not accept or of the wrong type."""


def first_doc_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    for line in doc.splitlines():
        if line.strip():
            return line.strip()
    return ""


def _resolve_hints(target: Callable) -> tuple[dict[str, Any], dict[str, str]]:
    """Type hints of ``target`` with ``Annotated`` constraints kept; unresolvable ones apart.

    Returns ``(hints, problems)``; ``problems`` maps a parameter to why its hint
    could not be resolved (e.g. a ``TYPE_CHECKING``-only import under
    ``from __future__ import annotations``).  The other parameters keep their
    checks: one bad hint must not switch checking off for the whole part.
    """
    try:
        return typing.get_type_hints(target, include_extras=True), {}
    except Exception:  # noqa: BLE001 - resolve one by one below to find the culprit
        pass
    globalns = getattr(inspect.unwrap(target), "__globals__", {})
    hints: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for pname, ann in getattr(target, "__annotations__", {}).items():
        if isinstance(ann, str):
            try:
                ann = eval(ann, globalns)  # what typing.get_type_hints does, one hint at a time
            except Exception as e:  # noqa: BLE001
                problems[pname] = f"its type hint {ann!r} cannot be resolved ({type(e).__name__}: {e})"
                continue
        hints[pname] = ann
    return hints, problems


def _params_model_from_signature(
    name: str, fn: Callable, skip: tuple[str, ...]
) -> tuple[type[pydantic.BaseModel], dict[str, str]]:
    """A pydantic model of ``fn``'s keyword parameters (extra keys forbidden) and unresolved hints."""
    target = fn.__init__ if inspect.isclass(fn) else fn
    sig = inspect.signature(target)
    hints, problems = _resolve_hints(target)
    fields: dict[str, Any] = {}
    for i, (pname, p) in enumerate(sig.parameters.items()):
        if inspect.isclass(fn) and i == 0:  # self
            continue
        if pname in skip or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = ... if p.default is inspect.Parameter.empty else p.default
        ann = hints.get(pname, _type_of_default(default))
        fields[pname] = (ann, default)
    model_name = "Params_" + re.sub(r"\W", "_", name)
    model = pydantic.create_model(  # type: ignore[call-overload]
        model_name,
        __config__=pydantic.ConfigDict(extra="forbid", arbitrary_types_allowed=True),
        **fields,
    )
    return model, {k: v for k, v in problems.items() if k in fields}


def _type_of_default(default: Any) -> Any:
    """An unannotated parameter takes its default's kind: a number stays a number (``scale = "abc"``
    is refused at ``imtrans check``), a flag a flag; anything else is accepted as it comes."""
    if isinstance(default, bool):
        return bool
    if isinstance(default, (int, float)):
        return _Number
    return Any


def _a_number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("should be a number, like its default")
    return value  # an int stays an int: the part decides what it does with it


_Number = Annotated[Any, pydantic.AfterValidator(_a_number)]


@dataclass
class Entry:
    """One registered part: its name, factory, parameter model and origin."""

    kind: str
    name: str
    factory: Callable[..., Any]
    params: type[pydantic.BaseModel]
    plugin: str
    doc: str = ""
    #: problems found at registration (e.g. a type hint that cannot be resolved), one sentence each
    warnings: list[str] = field(default_factory=list)
    #: the distribution and version of the plugin that registered it (recorded at registration)
    dist: str = ""
    version: str = ""

    @property
    def origin(self) -> dict[str, str]:
        """Which plugin, distribution and version provide this part (what a checkpoint records)."""
        return {"plugin": self.plugin, "dist": self.dist, "version": self.version}

    @property
    def summary(self) -> str:
        return first_doc_line(self.factory) if not self.doc else self.doc.strip().splitlines()[0]

    def defaults(self) -> dict[str, Any]:
        out = {}
        for k, f in self.params.model_fields.items():
            if not f.is_required():
                out[k] = f.get_default(call_default_factory=True)
        return out


@dataclass(frozen=True)
class PartRecord:
    """How a part was built: its kind, registered name, validated parameters and origin.

    :meth:`Registry.build` gives every part it builds this record as the
    attribute ``imtrans_part`` (read it with :func:`record_of`); a checkpoint
    stores ``kind``, ``spec`` and ``origin`` so the network can be rebuilt
    without the recipe, and provenance reads the origin from here.
    """

    kind: str
    name: str
    params: dict[str, Any]
    origin: dict[str, str] = field(default_factory=dict)

    @property
    def spec(self) -> dict[str, Any]:
        """The recipe-style spec ``{"name": ..., **params}`` that rebuilds the part."""
        return {"name": self.name, **self.params}


def record_of(obj: Any) -> PartRecord | None:
    """The :class:`PartRecord` of a part built by a registry, else None (never a guess)."""
    rec = getattr(obj, "imtrans_part", None)
    return rec if isinstance(rec, PartRecord) else None


def format_validation_error(err: pydantic.ValidationError, where: str, accepted: Iterable[str]) -> str:
    """One sentence per problem, naming the key, what was wrong and the fix."""
    accepted = sorted(accepted)
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"])
        if e["type"] == "extra_forbidden":
            key = str(e["loc"][0])
            hint = did_you_mean(key, accepted)
            parts.append(
                f"{where} does not accept parameter '{loc}'{hint or ''}; accepted parameters: "
                + (", ".join(accepted) if accepted else "none")
            )
        elif e["type"] == "missing":
            parts.append(f"{where} needs parameter '{loc}'; add it")
        else:
            parts.append(f"{where} parameter '{loc}': {e['msg']} (got {e.get('input')!r})")
    return "; ".join(parts)


@dataclass
class Registry:
    """Parts of one kind, by name.

    ``register`` works as a call (``reg.register("name", factory)``) or as a
    decorator (``@reg.register("name")``).  ``context`` names constructor
    arguments supplied by the caller (e.g. a scheme's ``recipe``) rather than
    by the recipe's parameter table; they are left out of the parameter model.
    """

    kind: str
    context: tuple[str, ...] = ()
    _entries: dict[str, Entry] = field(default_factory=dict)

    # -- registration -------------------------------------------------------
    def register(
        self,
        name: str | None = None,
        factory: Callable[..., Any] | None = None,
        *,
        params: type[pydantic.BaseModel] | None = None,
        doc: str | None = None,
        plugin: str = "unknown",
        dist: str = "",
        version: str = "",
    ):
        if factory is None:
            def deco(f):
                self.register(name or f.__name__, f, params=params, doc=doc, plugin=plugin, dist=dist, version=version)
                return f
            return deco
        pname = name or getattr(factory, "__name__", None)
        if not pname:
            raise ImtransError(f"a {self.kind} registered by plugin '{plugin}' has no name; pass name=...")
        if pname in self._entries:
            raise self._duplicate(pname, plugin)
        problems: dict[str, str] = {}
        if params is None:
            params, problems = _params_model_from_signature(f"{self.kind}_{pname}", factory, self.context)
        warns = [
            f"{self.kind} '{pname}' parameter '{p}': {why}; its values are not checked: import the type at "
            f"run time (not only under TYPE_CHECKING) or annotate with a type that exists at run time"
            for p, why in problems.items()
        ]
        self._entries[pname] = Entry(self.kind, pname, factory, params, plugin, doc or "", warns, dist, version)
        return factory

    def merge(self, other: "Registry") -> None:
        """Add every entry of ``other``; nothing is added if any name is already taken."""
        for name, entry in other._entries.items():
            if name in self._entries:
                raise self._duplicate(name, entry.plugin)
        self._entries.update(other._entries)

    def _duplicate(self, name: str, plugin: str) -> DuplicatePartError:
        return DuplicatePartError(
            f"{self.kind} '{name}' is registered by both plugin '{self._entries[name].plugin}' and plugin "
            f"'{plugin}'; rename one of them or disable a plugin with IMTRANS_DISABLE_PLUGINS"
        )

    # -- lookup -------------------------------------------------------------
    def names(self, pattern: str | None = None) -> list[str]:
        import fnmatch

        names = sorted(self._entries)
        return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def get(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            hint = did_you_mean(name, self._entries)
            if not self._entries:
                raise UnknownPartError(
                    f"unknown {self.kind} '{name}': no {self.kind} is registered because no plugin is loaded; "
                    f"call imtrans.plugins.load_plugins() first"
                ) from None
            avail = ", ".join(sorted(self._entries))
            raise UnknownPartError(
                f"unknown {self.kind} '{name}'{hint or ''}"
                + ("" if hint else f"; available: {avail}")
                + f" (see `imtrans list {self.kind}`)"
            ) from None

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in sorted(self._entries)]

    # -- building -----------------------------------------------------------
    def validate(self, name: str, params: dict[str, Any] | None = None, where: str | None = None) -> dict[str, Any]:
        """Check ``params`` against the part's model; return them with defaults filled in."""
        entry = self.get(name)
        where = where or f"{self.kind} '{name}'"
        try:
            m = entry.params.model_validate(dict(params or {}))
        except pydantic.ValidationError as e:
            raise PartParamsError(format_validation_error(e, where, entry.params.model_fields)) from None
        return {k: getattr(m, k) for k in entry.params.model_fields}

    def build(self, name: str, /, *context: Any, **params: Any) -> Any:
        """Build part ``name`` with validated keyword ``params`` (``context`` passed positionally)."""
        entry = self.get(name)
        clean = self.validate(name, params)
        obj = entry.factory(*context, **clean)
        # How the part was made, so a checkpoint can rebuild it without the recipe (see PartRecord).
        try:
            obj.imtrans_part = PartRecord(self.kind, name, clean, entry.origin)
        except Exception:
            pass  # an object that takes no attributes (a tuple...): nothing to rebuild it from later
        return obj


def new_registries() -> dict[str, Registry]:
    """One empty registry per kind (the plugin loader fills scratch ones, then installs them)."""
    return {
        "generator": Registry("generator"),
        "discriminator": Registry("discriminator"),
        "loss": Registry("loss"),
        "augmentation": Registry("augmentation"),
        # discriminator augmentations (imtrans.d_augment): every D input, real and fake, in the step
        "d_augment": Registry("d_augment"),
        "domain": Registry("domain", context=("split",)),
        "scheme": Registry("scheme", context=("recipe",)),
        "feature_extractor": Registry("feature_extractor"),
        # model zoo entries (imtrans.zoo.Pretrained): "building" one returns the catalogue entry itself
        "pretrained": Registry("pretrained"),
        # metric loggers (imtrans.engine.loggers), built as factory(run_dir, **params)
        "logger": Registry("logger", context=("run_dir",)),
    }


_REGISTRIES: dict[str, Registry] = new_registries()


def install(registries: dict[str, Registry]) -> None:
    """Make ``registries`` the ones every lookup sees (the plugin loader's last step)."""
    for kind, reg in registries.items():
        _REGISTRIES[kind]._entries = dict(reg._entries)


def merge_all(into: dict[str, Registry], scratch: dict[str, Registry]) -> None:
    """Merge one plugin's scratch registries into ``into``: all of them, or none if a name clashes."""
    for kind, reg in scratch.items():
        for entry in reg.entries():
            if entry.name in into[kind]:
                raise into[kind]._duplicate(entry.name, entry.plugin)
    for kind, reg in scratch.items():
        into[kind].merge(reg)


def _check_kind(kind: str) -> str:
    if kind in _REGISTRIES:
        return kind
    if kind.endswith("s") and kind[:-1] in _REGISTRIES:  # 'losses' / 'generators' read naturally
        return kind[:-1]
    if kind == "losses":
        return "loss"
    raise ImtransError(f"unknown kind of part '{kind}'{did_you_mean(kind, KINDS)}; kinds: {', '.join(KINDS)}")


def get_registry(kind: str) -> Registry:
    """The registry of ``kind``: empty until :func:`imtrans.plugins.load_plugins` has run.

    Loading plugins is the entry points' job (the CLI, ``imtrans.load_translator``,
    ``imtrans.load_recipe``, ``imtrans.train``), never a side effect of a lookup.
    """
    return _REGISTRIES[_check_kind(kind)]


def build(kind: str, name: str, /, *context: Any, **params: Any) -> Any:
    """Build a registered part: ``build("generator", "resnet", n_blocks=9)``."""
    return get_registry(kind).build(name, *context, **params)


def build_spec(kind: str, spec: dict[str, Any], *context: Any) -> Any:
    """Build from a recipe-style spec ``{"name": ..., **params}``."""
    spec = dict(spec)
    name = spec.pop("name")
    return build(kind, name, *context, **spec)


def part_origin(kind: str, name: str) -> dict[str, str]:
    """Which plugin, distribution and version provide a registered part (``{}`` if none does)."""
    reg = get_registry(kind)
    return reg.get(name).origin if name in reg else {}


def names(kind: str, pattern: str | None = None) -> list[str]:
    return get_registry(kind).names(pattern)


def describe(kind: str | None = None) -> list[Entry]:
    kinds = [_check_kind(kind)] if kind else list(KINDS)
    out: list[Entry] = []
    for k in kinds:
        out.extend(get_registry(k).entries())
    return out
