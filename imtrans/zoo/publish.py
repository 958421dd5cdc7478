"""Publishing a run's generator in the zoo: ``imtrans export RUN -o model.safetensors`` and its entry.

:func:`write_generator` writes the generator file described in
:mod:`imtrans.zoo.genfile` (one network ``G`` translating ``a2b``, with the
run checkpoint's metadata for it) atomically; :func:`entry_snippet` is the
``Pretrained(...)`` entry that publishes it, with the file's sha256.

Example::

    from imtrans.zoo.publish import entry_snippet, write_generator

    w = write_generator("runs/day2glow", "day2glow.safetensors", direction="a2b")
    print(w.sha256, entry_snippet("day2glow", w), sep="\n")
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imtrans.zoo.genfile import NET, translating_net

#: checkpoint metadata carried over into a generator file (optimiser state and discriminators stay behind)
_KEEP = ("scheme", "step", "epoch", "test_mode", "recipe", "parts")


@dataclass
class Written:
    """A generator file written by :func:`write_generator`: where, its sha256, size and metadata."""

    path: Path
    sha256: str
    bytes: int
    meta: dict[str, Any]


def generator_bytes(model: str | os.PathLike, direction: str = "a2b") -> tuple[bytes, dict[str, Any]]:
    """The bytes and metadata of the generator file of ``model``'s ``direction`` (a run, checkpoint or file)."""
    from imtrans.build import load_generator
    from imtrans.engine.checkpoint import load_weights, read_meta, resolve_checkpoint, weights_bytes

    ckpt = resolve_checkpoint(model)
    meta = read_meta(ckpt)
    net = translating_net(meta, str(model), direction)
    load_generator(ckpt, direction)  # it must rebuild and load here, or the published file would not either
    out = {k: meta[k] for k in _KEEP if k in meta}
    out.update(nets={NET: meta["nets"][net]}, translators={"a2b": NET}, exported={"direction": direction, "net": net})
    return weights_bytes({NET: load_weights(ckpt, net)}, out), out


def write_generator(model: str | os.PathLike, out: str | os.PathLike, direction: str = "a2b") -> Written:
    """Write ``model``'s ``direction`` generator to ``out`` atomically (see the module docstring)."""
    from imtrans.atomic import atomic_write_bytes

    data, meta = generator_bytes(model, direction)
    atomic_write_bytes(Path(out), data)
    return Written(Path(out), hashlib.sha256(data).hexdigest(), len(data), meta)


def entry_snippet(name: str, written: Written) -> str:
    """A ``register(...)`` call publishing ``written`` as zoo model ``name`` (its URL, source and target to fill in)."""
    from imtrans.zoo import card

    info = written.meta["nets"][NET]
    plugins = card.plugin_pins([info.get("origin")])
    lines = [
        f'register("{name}", Pretrained(',
        f'    urls=("https://example.org/models/{written.path.name}",),  # where you publish the file',
        '    source="A", target="B",  # what it translates from and to',
    ]
    if written.meta.get("scheme"):
        lines.append(f'    scheme="{written.meta["scheme"]}",')
    lines.append(f'    sha256="{written.sha256}",')
    lines.append("))" + (f"  # translating it needs: pip install {' '.join(plugins)}" if plugins else ""))
    return "\n".join(lines)
