"""The model card (``README.md``) that ``imtrans push`` writes: YAML front matter, then what a person reads.

The front matter is what the Hub indexes: ``library_name: imtrans``,
``pipeline_tag``, ``tags`` (``image-to-image`` and the scheme), ``datasets``
and an ``imtrans`` table with the scheme, step, directions, the plugin
distributions the generators need and the last evaluation's metrics.  Values
are written as JSON, which YAML reads as the same strings, numbers and tables.
"""

from __future__ import annotations

import json
import math
from typing import Any

from imtrans.zoo.hub import INSTALL, PREFIX


def plugin_pins(origins: list[Any]) -> list[str]:
    """``dist==version`` of every plugin distribution among ``origins`` (imtrans itself left out), sorted."""
    pins = set()
    for o in origins:
        dist = str(o.get("dist") or "") if isinstance(o, dict) else ""
        if dist and dist != "imtrans":
            pins.add(f"{dist}=={o['version']}" if o.get("version") else dist)
    return sorted(pins)


def finite_metrics(metrics: Any) -> dict[str, float]:
    """The finite numbers of an evaluation record's ``metrics`` (NaN has no YAML/JSON spelling)."""
    if not isinstance(metrics, dict):
        return {}
    return {str(k): float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def _yaml(key: str, value: Any) -> str:
    if isinstance(value, list):
        return f"{key}:\n" + "".join(f"- {json.dumps(v)}\n" for v in value)
    if isinstance(value, dict):
        return f"{key}:\n" + "".join(f"  {k}: {json.dumps(v)}\n" for k, v in value.items())
    return f"{key}: {json.dumps(value)}\n"


def front_matter(info: dict[str, Any]) -> str:
    """The YAML block between ``---`` lines (see the module docstring for the keys)."""
    tags = ["image-to-image", info["scheme"], "imtrans"]
    imtrans = {"scheme": info["scheme"], "step": info["step"], "directions": info["directions"],
               "plugins": info["plugins"], "evaluation": info["evaluation"]}
    body = _yaml("library_name", "imtrans") + _yaml("pipeline_tag", "image-to-image")
    body += _yaml("tags", list(dict.fromkeys(t for t in tags if t)))
    if info["dataset"]:
        body += _yaml("datasets", [info["dataset"]])
    return "---\n" + body + _yaml("imtrans", imtrans) + "---\n"


def _commands(info: dict[str, Any]) -> list[str]:
    ref = PREFIX + info["repo_id"]
    lines = [" ".join([INSTALL, *info["plugins"]])]
    for d in info["directions"]:
        flag = "" if d == "a2b" else f" --direction {d}"
        lines.append(f"imtrans translate {ref} photos/ -o translated_{d}/{flag}")
    return lines


def model_card(info: dict[str, Any]) -> str:
    """The whole ``README.md``.

    ``info``: ``repo_id``, ``scheme``, ``step``, ``directions`` (``{"a2b": "G", ...}``), ``dataset``,
    ``plugins`` (pins the generators need), ``trained_with`` (other plugin pins of the run),
    ``evaluation`` (``{"step": N, metric: value...}`` or ``{}``), ``sample`` (a path in the repo or ``None``),
    ``description`` (the recipe's, may be empty).
    """
    ref = PREFIX + info["repo_id"]
    ev = dict(info["evaluation"])
    lines = [front_matter(info), f"# {info['repo_id'].split('/', 1)[1]}", "",
             f"A {info['scheme'] + ' ' if info['scheme'] else ''}image-to-image translator trained with imtrans "
             f"for {info['step']} steps"
             + (f" on `{info['dataset']}`" if info["dataset"] else "") + "."
             + (f" Its recipe: {info['description']}" if info.get("description") else ""),
             "", "## Use it", "", "```bash", *_commands(info), "```", "",
             "```python", "from imtrans import load_translator", "",
             f'translator = load_translator("{ref}")  # PIL image in, PIL image out', "```", ""]
    if info["plugins"]:
        lines += [f"The generators need the plugin distribution(s) {', '.join(f'`{p}`' for p in info['plugins'])}.", ""]
    if info["trained_with"]:
        used = ", ".join(f"`{p}`" for p in info["trained_with"])
        lines += [f"Training also used {used} (not needed to translate).", ""]
    lines += ["## Evaluation", ""]
    if ev:
        step = ev.pop("step", info["step"])
        lines += [f"The last evaluation of the run (step {step}):", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.6g} |" for k, v in ev.items()]
    else:
        lines += ["The run recorded no evaluation."]
    if info["sample"]:
        lines += ["", "## Samples", "", f"![samples]({info['sample']})"]
    lines += ["", "## Files", "",
              "* `generators.safetensors`: the generator(s), with the architecture in the safetensors metadata;",
              "* `recipe.resolved.toml`: the recipe the run was trained with (`imtrans run` takes it);",
              f"* pulled by `{ref}` in `imtrans translate`, `demo`, `eval` and a recipe's `pretrained` "
              f"(`{INSTALL}`)."]
    return "\n".join(lines) + "\n"
