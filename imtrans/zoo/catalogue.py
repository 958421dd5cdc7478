"""The model zoo's catalogue: which pretrained translators exist and how to rebuild them.

Each entry is a :class:`Pretrained`, registered under its zoo name in the
``pretrained`` registry through the ``register_pretrained`` hook, like every
other part (the built-in plugin registers :data:`PRETRAINED`).  A plugin adds
its own::

    from imtrans import hookimpl
    from imtrans.zoo import Pretrained

    @hookimpl
    def register_pretrained(register):
        register("my_day2dusk", Pretrained(
            urls=("https://example.org/models/day2dusk.pth",),
            architecture={"name": "resnet", "n_blocks": 9},
            source="day", target="dusk", sha256="..."))

An entry may also point at an imtrans generator file (``.safetensors``, as
``imtrans export RUN -o model.safetensors`` writes it): the file carries its
architecture and the plugin origin of its parts, so ``architecture`` may be
left out (given, it must match the file)::

        register("my_glow", Pretrained(
            urls=("https://example.org/models/glow.safetensors",),
            source="day", target="glow", sha256="..."))

The built-in entries are the two official lists of pytorch-CycleGAN-and-pix2pix:
``scripts/download_cyclegan_model.sh`` (ResNet generators with 9 blocks) and
``scripts/download_pix2pix_model.sh`` (U-Net 256 generators).  Names in both
lists (``sat2map``, ``map2sat``, ``facades_label2photo``) keep their official
name for the CycleGAN model; every pix2pix model is named ``pix2pix_<name>``.
No official checksum is published, so the built-in entries have none: the first
download records one (see :mod:`imtrans.zoo.store`).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from imtrans.errors import ImtransError

CYCLEGAN_PAPER = (
    "Zhu, Park, Isola, Efros: Unpaired Image-to-Image Translation using Cycle-Consistent "
    "Adversarial Networks, ICCV 2017 (arXiv:1703.10593)"
)
PIX2PIX_PAPER = (
    "Isola, Zhu, Zhou, Efros: Image-to-Image Translation with Conditional Adversarial Networks, "
    "CVPR 2017 (arXiv:1611.07004)"
)
CYCLEGAN_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/{}.pth"
PIX2PIX_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch/{}.pth"

#: official ``--netG resnet_9blocks`` with the defaults of ``test.py --model test --no_dropout``
RESNET_9BLOCKS: dict[str, Any] = {"name": "resnet", "ngf": 64, "n_blocks": 9, "norm": "instance", "dropout": False}
#: official ``--netG unet_256`` with the pix2pix defaults (``--norm batch``, dropout on)
UNET_256: dict[str, Any] = {"name": "unet", "ngf": 64, "num_downs": 8, "norm": "batch", "dropout": True}

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


#: what an entry's file is: an official state dict (``.pth``) or an imtrans generator file (``.safetensors``)
FORMATS = ("official", "imtrans")


@dataclass(frozen=True)
class Pretrained:
    """A published translator: where its weights file lives and the network it fits.

    ``urls``: where the weights file can be downloaded, tried in order
    (``IMTRANS_PRETRAINED_MIRROR`` replaces the scheme and host of each);
    ``format``: ``"official"`` (an official ``.pth`` state dict, converted once)
    or ``"imtrans"`` (an imtrans generator ``.safetensors`` file, used as it is);
    left out, a first URL ending in ``.safetensors`` means ``"imtrans"``;
    ``architecture``: the part spec ``{"name": part, **params}`` the file was
    trained with (official: required, and its layout must be importable, see
    :data:`imtrans.nets.official.OFFICIAL_LAYOUTS`; imtrans: optional, the file
    carries it, and given it must match the file); ``source``/``target``:
    what it translates from and to (the direction); ``scheme``: the method that
    trained it; ``dataset``: its training data; ``paper`` and ``licence``: what
    to cite and the terms to check; ``sha256``: the official file's checksum
    when known (otherwise the first download records one); ``reverse``: the
    zoo name of the model translating the other way, if there is one.

    Calling an entry returns it, so ``registry.build("pretrained", name)`` gives
    the entry like any other part.
    """

    urls: tuple[str, ...]
    architecture: dict[str, Any] | None = None
    source: str = ""
    target: str = ""
    scheme: str = "cyclegan"
    dataset: str = ""
    paper: str = ""
    licence: str = ""
    sha256: str | None = None
    reverse: str | None = None
    kind: Literal["generator"] = "generator"
    format: Literal["official", "imtrans"] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.urls, str):  # a single URL is a common slip; accept it
            object.__setattr__(self, "urls", (self.urls,))
        if not self.urls or not all(isinstance(u, str) and u.startswith(("http://", "https://")) for u in self.urls):
            raise ImtransError(f"a Pretrained entry needs urls starting with http:// or https://; got {self.urls!r}")
        if self.format is None:  # inferred from the file name, so an entry rarely needs to say it
            path = urllib.parse.urlsplit(self.urls[0]).path
            object.__setattr__(self, "format", "imtrans" if path.endswith(".safetensors") else "official")
        if self.format not in FORMATS:
            raise ImtransError(f"a Pretrained entry's format must be one of {', '.join(FORMATS)}; got {self.format!r}")
        arch = self.architecture
        if not (arch is None and self.format == "imtrans") and not (
                isinstance(arch, dict) and isinstance(arch.get("name"), str)):
            raise ImtransError(
                f"a Pretrained entry's architecture needs a part name, e.g. {{'name': 'resnet', ...}}; got {arch!r}"
                + (" (only an imtrans .safetensors entry may leave it out)" if arch is None else "")
            )
        if not (isinstance(self.source, str) and self.source and isinstance(self.target, str) and self.target):
            raise ImtransError(
                f"a Pretrained entry needs source and target (what it translates from and to); got "
                f"source={self.source!r}, target={self.target!r}"
            )
        if self.sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", self.sha256):
            raise ImtransError(f"a Pretrained entry's sha256 must be 64 hex digits; got {self.sha256!r}")
        # `imtrans list` shows the first doc line of what was registered: make it this entry's summary.
        object.__setattr__(self, "__doc__", self.summary)

    def __call__(self) -> "Pretrained":
        return self

    @property
    def summary(self) -> str:
        """What it does, e.g. ``horse -> zebra (CycleGAN, horse2zebra)``."""
        where = ", ".join(x for x in (_SCHEME_TITLES.get(self.scheme, self.scheme), self.dataset) if x)
        return f"{self.source} -> {self.target}" + (f" ({where})" if where else "")

    @property
    def part(self) -> str:
        """The architecture's part name (``""`` for an imtrans entry that leaves it to its file)."""
        return str(self.architecture["name"]) if self.architecture else ""

    @property
    def params(self) -> dict[str, Any]:
        """The architecture's parameters without its part name."""
        return {k: v for k, v in (self.architecture or {}).items() if k != "name"}

    def describe_architecture(self) -> str:
        """``resnet(ngf=64, n_blocks=9, norm='instance', dropout=False)``."""
        if not self.architecture:
            return "(as its .safetensors file says)"
        return describe_spec(self.architecture)

    def weights_bytes(self) -> int | None:
        """Bytes of the float32 weights this architecture holds (the download is about this size)."""
        if not self.architecture:
            return None
        return _weights_bytes(json.dumps(self.architecture, sort_keys=True))


def describe_spec(spec: dict[str, Any]) -> str:
    """A part spec as ``resnet(ngf=64, n_blocks=9)``."""
    return f"{spec['name']}(" + ", ".join(f"{k}={v!r}" for k, v in spec.items() if k != "name") + ")"


_SCHEME_TITLES = {"cyclegan": "CycleGAN", "pix2pix": "pix2pix"}


#: bytes of the built-in architectures' weights, so that listing the zoo imports no torch
#: (tests/test_zoo.py checks each against :func:`_weights_bytes` building the network)
KNOWN_WEIGHTS_BYTES: dict[str, int] = {
    json.dumps(RESNET_9BLOCKS, sort_keys=True): 45_512_716,
    json.dumps(UNET_256, sort_keys=True): 217_695_348,
}


@lru_cache(maxsize=None)
def _weights_bytes(arch_json: str, measure: bool = False) -> int | None:
    if not measure and arch_json in KNOWN_WEIGHTS_BYTES:
        return KNOWN_WEIGHTS_BYTES[arch_json]
    import torch

    from imtrans.nets.discriminators import DISCRIMINATORS
    from imtrans.nets.generators import GENERATORS

    spec = json.loads(arch_json)
    factory = {**GENERATORS, **DISCRIMINATORS}.get(spec.pop("name"))
    if factory is None:  # a plugin's part: its size is unknown until downloaded
        return None
    try:
        with torch.device("meta"):  # shapes only: nothing is allocated
            net = factory(**spec)
    except Exception:  # noqa: BLE001 - a size is a nicety; a bad spec is reported when it is used
        return None
    return sum(t.numel() * t.element_size() for t in net.state_dict().values())


#: generator parameters that do not change the weights' layout: fine-tuning from a zoo or Hub model may choose them freely
FREE_PARAMS = ("dropout", "init", "init_gain", "pretrained")


def check_name(name: str) -> str:
    """``name`` if it can name a cache folder (letters, digits, ``_ . -``), else :class:`ImtransError`."""
    if not _NAME.fullmatch(name) or name in (".", ".."):
        raise ImtransError(f"pretrained model name '{name}' must be a plain name (letters, digits, _ . -)")
    return name


def _cyclegan(
    name: str, source: str, target: str, dataset: str, licence: str = "", reverse: str | None = None
) -> Pretrained:
    return Pretrained(
        urls=(CYCLEGAN_URL.format(name),), architecture=dict(RESNET_9BLOCKS), source=source, target=target,
        scheme="cyclegan", dataset=dataset, paper=CYCLEGAN_PAPER, licence=licence or _LICENCE.format(dataset),
        reverse=reverse,
    )


def _pix2pix(name: str, source: str, target: str, dataset: str, reverse: str | None = None) -> Pretrained:
    return Pretrained(
        urls=(PIX2PIX_URL.format(name),), architecture=dict(UNET_256), source=source, target=target,
        scheme="pix2pix", dataset=dataset, paper=PIX2PIX_PAPER, licence=_LICENCE.format(dataset), reverse=reverse,
    )


_LICENCE = (
    "published by the authors of pytorch-CycleGAN-and-pix2pix (code under a BSD licence); trained on the "
    "{} data set, whose images keep their own terms: check them before commercial use"
)
_IMAGENET = (
    "published by the authors of pytorch-CycleGAN-and-pix2pix (code under a BSD licence); trained on "
    "ImageNet images, whose terms allow non-commercial research use"
)
_CITYSCAPES = (
    "published by the authors of pytorch-CycleGAN-and-pix2pix (code under a BSD licence); trained on "
    "Cityscapes, whose terms allow non-commercial use only"
)

#: built-in zoo entries by name (registered by the built-in plugin)
PRETRAINED: dict[str, Pretrained] = {
    # scripts/download_cyclegan_model.sh
    "apple2orange": _cyclegan("apple2orange", "apples", "oranges", "apple2orange", _IMAGENET, reverse="orange2apple"),
    "orange2apple": _cyclegan("orange2apple", "oranges", "apples", "apple2orange", _IMAGENET, reverse="apple2orange"),
    "summer2winter_yosemite": _cyclegan("summer2winter_yosemite", "Yosemite in summer", "in winter",
                                        "summer2winter_yosemite", reverse="winter2summer_yosemite"),
    "winter2summer_yosemite": _cyclegan("winter2summer_yosemite", "Yosemite in winter", "in summer",
                                        "summer2winter_yosemite", reverse="summer2winter_yosemite"),
    "horse2zebra": _cyclegan("horse2zebra", "horses", "zebras", "horse2zebra", _IMAGENET, reverse="zebra2horse"),
    "zebra2horse": _cyclegan("zebra2horse", "zebras", "horses", "horse2zebra", _IMAGENET, reverse="horse2zebra"),
    "monet2photo": _cyclegan("monet2photo", "Monet paintings", "photos", "monet2photo", reverse="style_monet"),
    "style_monet": _cyclegan("style_monet", "photos", "Monet-style paintings", "monet2photo", reverse="monet2photo"),
    "style_cezanne": _cyclegan("style_cezanne", "photos", "Cezanne-style paintings", "cezanne2photo"),
    "style_ukiyoe": _cyclegan("style_ukiyoe", "photos", "ukiyo-e-style prints", "ukiyoe2photo"),
    "style_vangogh": _cyclegan("style_vangogh", "photos", "Van Gogh-style paintings", "vangogh2photo"),
    "sat2map": _cyclegan("sat2map", "aerial photos", "maps", "maps", reverse="map2sat"),
    "map2sat": _cyclegan("map2sat", "maps", "aerial photos", "maps", reverse="sat2map"),
    "cityscapes_photo2label": _cyclegan("cityscapes_photo2label", "street photos", "label maps", "cityscapes",
                                        _CITYSCAPES, reverse="cityscapes_label2photo"),
    "cityscapes_label2photo": _cyclegan("cityscapes_label2photo", "label maps", "street photos", "cityscapes",
                                        _CITYSCAPES, reverse="cityscapes_photo2label"),
    "facades_photo2label": _cyclegan("facades_photo2label", "facade photos", "label maps", "facades",
                                     reverse="facades_label2photo"),
    "facades_label2photo": _cyclegan("facades_label2photo", "label maps", "facade photos", "facades",
                                     reverse="facades_photo2label"),
    "iphone2dslr_flower": _cyclegan("iphone2dslr_flower", "iPhone flower photos", "DSLR-style shallow depth of field",
                                    "iphone2dslr_flower"),
    # scripts/download_pix2pix_model.sh
    "pix2pix_edges2shoes": _pix2pix("edges2shoes", "edge drawings", "shoe photos", "edges2shoes"),
    "pix2pix_sat2map": _pix2pix("sat2map", "aerial photos", "maps", "maps", reverse="pix2pix_map2sat"),
    "pix2pix_map2sat": _pix2pix("map2sat", "maps", "aerial photos", "maps", reverse="pix2pix_sat2map"),
    "pix2pix_facades_label2photo": _pix2pix("facades_label2photo", "label maps", "facade photos", "facades"),
    "pix2pix_day2night": _pix2pix("day2night", "daytime photos", "night", "day2night"),
}
