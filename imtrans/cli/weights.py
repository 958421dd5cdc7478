"""`imtrans import-weights`: official pytorch-CycleGAN-and-pix2pix .pth -> imtrans .safetensors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from imtrans.cli import app
from imtrans.cli._console import console


def _parse_sets(items: list[str]) -> dict:
    from imtrans.errors import ImtransError

    params: dict = {}
    for item in items:
        if "=" not in item:
            raise ImtransError(f"--set '{item}' is not KEY=VALUE; e.g. --set n_blocks=9")
        k, v = item.split("=", 1)
        try:
            params[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            params[k.strip()] = v  # a bare word such as norm=batch
    return params


def import_weights_file(
    pth: str | Path, part: str, params: dict, out: str | Path, role: Optional[str] = None, name: Optional[str] = None
) -> Path:
    """Convert one official network and save it as an imtrans weights file (atomically).

    The file has the checkpoint weights layout (keys ``"<name>.<param>"`` and
    ``imtrans`` metadata with ``nets``; generators also get
    ``translators = {"a2b": name}``) so ``imtrans translate FILE`` works directly.
    """
    from safetensors.torch import save as st_save

    from imtrans.engine.checkpoint import FORMAT, atomic_write_bytes
    from imtrans.errors import ImtransError
    from imtrans.nets.official import OFFICIAL_LAYOUTS, convert_official

    if part not in OFFICIAL_LAYOUTS:
        raise ImtransError(f"--part '{part}' has no official layout; choose one of {', '.join(sorted(OFFICIAL_LAYOUTS))}")
    kind = OFFICIAL_LAYOUTS[part][0]
    if role is not None and role != kind:
        raise ImtransError(f"--role {role} does not match part '{part}', which is a {kind}")
    net, sd = convert_official(pth, part, params)
    name = name or ("G" if kind == "generator" else "D")
    spec = getattr(net, "_imtrans_spec", None) or {"name": part, **params}
    meta = {"format": FORMAT, "nets": {name: {"kind": kind, "spec": spec}}, "source": str(Path(pth).name)}
    if kind == "generator":
        meta["translators"] = {"a2b": name}
    out = Path(out)
    tensors = {f"{name}.{k}": v.detach().cpu().contiguous().clone() for k, v in sd.items()}
    atomic_write_bytes(out, st_save(tensors, metadata={"imtrans": json.dumps(meta)}))
    return out


@app.command("import-weights")
def import_weights(
    pth: Path = typer.Argument(..., help="Official weights file, e.g. latest_net_G_A.pth or horse2zebra.pth."),
    part: str = typer.Option(..., "--part", help="Our part with the official layout: resnet, unet, patchgan, pixelgan."),
    set_: list[str] = typer.Option([], "--set", "-s", help="Part parameter the file was trained with: --set n_blocks=9 (repeatable)."),
    role: Optional[str] = typer.Option(None, "--role", help="generator or discriminator (checked against the part)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output .safetensors file."),
) -> None:
    """Convert official pytorch-CycleGAN-and-pix2pix weights into an imtrans .safetensors file."""
    path = import_weights_file(pth, part, _parse_sets(set_), out, role=role)
    console.print(f"[green]imported[/] {pth} as {part} -> {path}", highlight=False)
