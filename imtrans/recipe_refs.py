"""Where a recipe comes from: a file path, or ``PACKAGE:NAME`` inside an installed package.

Packages ship recipes as package data: ``NAME.toml`` in the package's ``recipes`` folder is
the recipe ``PACKAGE:NAME`` (``imtrans/recipes/quickstart.toml`` is ``imtrans:quickstart``,
a plugin's ``imtrans_cut/recipes/cut_horse2zebra.toml`` is ``imtrans_cut:cut_horse2zebra``).
They are read with :mod:`importlib.resources`, so a recipe inside a wheel, a zip or an
editable install reads the same.

A *source* (:class:`FileSource` or :class:`PackageSource`) reads its text, resolves a
relative ``extends`` (beside itself: inside the package for a packaged recipe) and says
where it came from, for the run directory's ``recipe.resolved.toml``.

A string is a reference when it reads ``PACKAGE:NAME`` with a package name of at least two
characters: ``C:\\x.toml`` and ``C:x.toml`` are Windows paths (a drive letter is one
character).  A :class:`~pathlib.Path` is always a file; a file whose name looks like a
reference is given as ``./ab:c.toml``.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.resources
import importlib.util
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from imtrans.errors import RecipeError
from imtrans.suggest import did_you_mean

#: ``PACKAGE:NAME``; hyphens are accepted in PACKAGE only to say that the import name is wanted
REFERENCE = re.compile(r"(?P<package>[A-Za-z_][\w-]*(?:\.[A-Za-z_]\w*)*):(?P<name>\w[\w.-]*)")
#: the folder of a package that holds its recipes
FOLDER = "recipes"
#: the package whose recipes are the built-in ones
BUILTIN_PACKAGE = "imtrans"


def parse_reference(text: str) -> tuple[str, str] | None:
    """``"imtrans:quickstart"`` -> ``("imtrans", "quickstart")``; ``None`` for anything that is a path."""
    m = REFERENCE.fullmatch(text)
    if m is None or len(m["package"]) < 2:  # 'C:x.toml': a drive letter, not a package
        return None
    return m["package"], m["name"].removesuffix(".toml")


@dataclass(frozen=True)
class FileSource:
    """A recipe file on disk."""

    path: Path

    @property
    def label(self) -> str:
        return str(self.path)

    @property
    def stem(self) -> str:
        return self.path.stem

    def key(self) -> tuple[str, ...]:
        return ("file", str(self.path.resolve()))

    def describe(self) -> str:
        return str(self.path.resolve())

    def read_text(self) -> str:
        path = self.path
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RecipeError(f"recipe file {path} does not exist; check the path") from None
        except IsADirectoryError:
            raise RecipeError(f"recipe {path} is a directory; give the path of a .toml file") from None
        except UnicodeDecodeError:
            raise RecipeError(f"recipe {path} is not UTF-8 text; save it as UTF-8 TOML") from None
        except OSError as e:
            raise RecipeError(f"recipe {path} cannot be read ({e.strerror}); check its permissions") from None

    def extended(self, parent: str) -> "Source":
        """The recipe that ``extends = parent`` in this file names (relative to this file)."""
        ref = parse_reference(parent)
        if ref is not None:
            return package_source(*ref, text=parent, within=self.label)
        ppath = self.path.parent / parent
        if not ppath.exists():
            raise RecipeError(f"{self.path}: extends = {parent!r} but {ppath} does not exist; "
                              f"fix the path (it is relative to {self.path.name})")
        return FileSource(ppath)


@dataclass(frozen=True)
class PackageSource:
    """A recipe shipped inside an installed package: ``PACKAGE/recipes/NAME.toml``."""

    package: str
    name: str  # inside the recipes folder, without .toml ('quickstart'; 'sub/x' through a relative extends)
    resource: Any  # importlib.resources.abc.Traversable

    @property
    def label(self) -> str:
        return f"{self.package}:{self.name}"

    @property
    def stem(self) -> str:
        return posixpath.basename(self.name)

    def key(self) -> tuple[str, ...]:
        return ("package", self.package, self.name)

    def describe(self) -> str:
        dist = package_distribution(self.package)
        return f"{self.label} = {self.resource}" + (f" ({dist[0]} {dist[1]})" if dist else "")

    def read_text(self) -> str:
        try:
            return self.resource.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise RecipeError(f"recipe {self.label} is not UTF-8 text; reinstall the package {self.package!r}") from None
        except OSError as e:
            raise RecipeError(f"recipe {self.label} cannot be read ({e}); reinstall the package {self.package!r}") from None

    def extended(self, parent: str) -> "Source":
        """``extends = parent``: a reference, an absolute path, or a recipe beside this one in the package."""
        ref = parse_reference(parent)
        if ref is not None:
            return package_source(*ref, text=parent, within=self.label)
        if Path(parent).is_absolute():
            return FileSource(Path(parent))
        rel = posixpath.normpath(posixpath.join(posixpath.dirname(self.name), parent.replace("\\", "/")))
        if rel.startswith("../") or rel == "..":
            raise RecipeError(f"{self.label}: extends = {parent!r} leads outside the package's recipes folder; "
                              f"name another package's recipe as PACKAGE:NAME")
        return package_source(self.package, rel.removesuffix(".toml"), text=parent, within=self.label)


Source = Union[FileSource, PackageSource]


def recipe_source(recipe: "str | Path | Source") -> Source:
    """The source a command-line argument or API argument names (a reference string or a path)."""
    if isinstance(recipe, (FileSource, PackageSource)):
        return recipe
    if isinstance(recipe, str):
        ref = parse_reference(recipe)
        if ref is not None:
            return package_source(*ref, text=recipe)
    return FileSource(Path(recipe))


def _where(text: str | None, within: str | None) -> str:
    """How an error names the reference: as a recipe argument, or as the ``extends`` of the recipe ``within``."""
    if within:
        return f"{within}: extends = {text!r}: "
    return f"recipe {text!r}: " if text else ""


def recipes_folder(package: str, text: str | None = None, within: str | None = None) -> Any:
    """The ``recipes`` folder (a Traversable) of an installed package; one-sentence errors otherwise."""
    what = _where(text, within)
    if "-" in package:
        fixed = package.replace("-", "_")
        raise RecipeError(f"{what}{package!r} is a distribution name, not an importable package; "
                          f"use the package's import name, e.g. {fixed!r}")
    try:
        spec = importlib.util.find_spec(package)
    except ModuleNotFoundError:
        spec = None
    except Exception as e:  # noqa: BLE001 - a parent package that fails to import
        raise RecipeError(f"{what}the package {package!r} failed to import ({type(e).__name__}: {e}); "
                          "fix or reinstall it") from None
    if spec is None:
        hint = did_you_mean(package, [p for p, _, _ in recipe_packages()])
        raise RecipeError(f"{what}no package {package!r} is installed here; `pip install` the package "
                          f"that ships it or check the spelling{hint}")
    if spec.submodule_search_locations is None:
        raise RecipeError(f"{what}{package!r} is a module, not a package, so it ships no recipes; "
                          f"recipes live in a package's {FOLDER}/ folder")
    try:
        folder = importlib.resources.files(package) / FOLDER
    except Exception as e:  # noqa: BLE001 - the package's __init__ failed
        raise RecipeError(f"{what}the package {package!r} failed to import ({type(e).__name__}: {e}); "
                          "fix or reinstall it") from None
    if not folder.is_dir():
        raise RecipeError(f"{what}the package {package!r} ships no recipes (it has no {FOLDER}/ folder); "
                          "check the package name")
    return folder


def package_recipes(package: str) -> list[str]:
    """Names of the recipes a package ships (``NAME`` of each ``recipes/NAME.toml``), sorted."""
    folder = recipes_folder(package)
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml") and p.is_file())


def package_source(package: str, name: str, text: str | None = None, within: str | None = None) -> PackageSource:
    """The packaged recipe ``package:name``; an error naming what the package ships when it has no such recipe."""
    folder = recipes_folder(package, text, within)
    *dirs, last = name.split("/")
    resource = folder
    for part in (*dirs, f"{last}.toml"):
        resource = resource / part
    if not resource.is_file():
        shipped = package_recipes(package)
        where = _where(text, within)
        hint = did_you_mean(name, shipped) or "; `imtrans recipes` lists every installed recipe"
        raise RecipeError(f"{where}the package {package!r} ships no recipe {name!r} "
                          f"(it ships {', '.join(shipped) or 'none'}){hint}")
    return PackageSource(package, name, resource)


def recipe_packages() -> list[tuple[str, str, str]]:
    """(package, distribution, version) of imtrans and of every plugin installed through entry points.

    The package is the top-level package of each entry point's module (``imtrans_cut.plugin`` ->
    ``imtrans_cut``); each appears once, imtrans first.
    """
    from imtrans._version import __version__

    out = {BUILTIN_PACKAGE: (BUILTIN_PACKAGE, "imtrans", __version__)}
    for ep in md.entry_points(group="imtrans"):
        package = ep.value.split(":")[0].split(".")[0].strip()
        dist = getattr(ep, "dist", None)
        if package and package not in out:
            out[package] = (package, dist.metadata["Name"] if dist else "", dist.version if dist else "")
    return list(out.values())


def package_distribution(package: str) -> tuple[str, str] | None:
    """(distribution, version) that installed a package, or None when none is known."""
    top = package.split(".")[0]
    for p, dist, version in recipe_packages():
        if p == top and dist:
            return dist, version
    dists = md.packages_distributions().get(top)  # a package that is not a plugin (slower: reads every RECORD)
    if not dists:
        return None
    try:
        return dists[0], md.version(dists[0])
    except md.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class ShippedRecipe:
    """One recipe an installed package ships, as ``imtrans recipes`` lists it."""

    reference: str  # PACKAGE:NAME
    package: str
    distribution: str
    version: str
    description: str  # the recipe's `description`, else its first comment line
    extends: str
    location: str

    def as_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


def _summary(text: str) -> tuple[str, str]:
    """(description, extends) of a recipe's text: its ``description`` key, else its first comment line."""
    import tomllib

    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as e:
        return f"(not valid TOML: {e})", ""
    extends = data.get("extends") if isinstance(data.get("extends"), str) else ""
    if isinstance(data.get("description"), str) and data["description"].strip():
        return data["description"].strip(), extends
    first = next((ln.lstrip("#").strip() for ln in text.splitlines() if ln.startswith("#") and ln.lstrip("#").strip()), "")
    return first, extends


def shipped_recipes() -> list[ShippedRecipe]:
    """Every recipe shipped by imtrans and by the packages of installed plugins, imtrans's first.

    Packages without a ``recipes`` folder (or that fail to import: plugin loading reports
    those) are left out.
    """
    out = []
    for package, dist, version in recipe_packages():
        try:
            names = package_recipes(package)
        except RecipeError:
            continue
        for name in names:
            src = package_source(package, name)
            try:
                description, extends = _summary(src.read_text())
            except RecipeError as e:
                description, extends = f"({e})", ""
            out.append(ShippedRecipe(src.label, package, dist, version, description, extends, str(src.resource)))
    return out
