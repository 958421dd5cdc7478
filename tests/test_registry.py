"""The generic registry: register, build, list, and the error messages."""

from typing import Literal

import pytest

from imtrans.registry import DuplicatePartError, PartParamsError, PartRecord, Registry, UnknownPartError, record_of


def make():
    reg = Registry("generator")

    @reg.register("resnet", plugin="builtin")
    class Resnet:
        """A resnet.

        More text."""

        def __init__(self, ngf: int = 64, n_blocks: int = 9, norm: Literal["instance", "batch"] = "instance"):
            self.ngf, self.n_blocks, self.norm = ngf, n_blocks, norm

    def unet(num_downs: int = 8):
        """A unet."""
        return ("unet", num_downs)

    reg.register("unet", unet, plugin="builtin")
    return reg


def test_register_by_decorator_and_call_and_build():
    reg = make()
    assert reg.names() == ["resnet", "unet"]
    g = reg.build("resnet", ngf=32)
    assert (g.ngf, g.n_blocks, g.norm) == (32, 9, "instance")
    assert g.imtrans_part.spec == {"name": "resnet", "ngf": 32, "n_blocks": 9, "norm": "instance"}
    assert reg.build("unet", num_downs=7) == ("unet", 7)
    assert reg.get("resnet").summary == "A resnet."
    assert reg.get("unet").plugin == "builtin"
    assert reg.names("u*") == ["unet"]


def test_unknown_name_suggests_closest():
    with pytest.raises(UnknownPartError) as e:
        make().get("resnet9")
    assert "unknown generator 'resnet9'; did you mean 'resnet'?" in str(e.value)


def test_duplicate_names_both_plugins():
    reg = make()
    with pytest.raises(DuplicatePartError) as e:
        reg.register("resnet", lambda: None, plugin="thirdparty")
    assert "'builtin'" in str(e.value) and "'thirdparty'" in str(e.value)


def test_bad_parameter_names_key_and_accepted_ones():
    with pytest.raises(PartParamsError) as e:
        make().build("resnet", ngff=3)
    msg = str(e.value)
    assert "'ngff'" in msg and "did you mean 'ngf'" in msg
    assert "accepted parameters: n_blocks, ngf, norm" in msg


def test_bad_parameter_type_and_choice_checked_before_building():
    built = []

    reg = Registry("loss")

    @reg.register("l", plugin="p")
    def l(mode: Literal["a", "b"] = "a", w: float = 1.0):
        built.append(1)

    with pytest.raises(PartParamsError) as e:
        reg.build("l", mode="c")
    assert "'mode'" in str(e.value)
    with pytest.raises(PartParamsError):
        reg.build("l", w="heavy")
    assert built == []  # nothing was constructed
    reg.build("l", w=2)  # ints coerce to float
    assert built == [1]


def test_untyped_parameters_take_their_defaults_kind():
    """``scale = "abc"`` for an unannotated ``scale=1.0`` used to pass check (issue #26 item 3)."""
    got = []
    reg = Registry("loss")

    @reg.register("l", plugin="p")
    def l(scale=1.0, n=3, flag=False, label="x", anything=None):
        got.append((scale, n, flag, label, anything))

    for bad in ({"scale": "abc"}, {"n": [3]}, {"scale": True}):
        with pytest.raises(PartParamsError, match=f"parameter '{next(iter(bad))}'.*should be a number"):
            reg.build("l", **bad)
    assert got == []
    reg.build("l", scale=2, n=4.5, label=7, anything={"k": 1})  # numbers stay as given; the rest as it comes
    assert got == [(2, 4.5, False, 7, {"k": 1})] and isinstance(got[0][0], int)


def test_context_arguments_are_not_parameters():
    reg = Registry("domain", context=("split",))

    @reg.register("d", plugin="p")
    def d(split: str, path: str = "x"):
        return (split, path)

    assert "split" not in reg.get("d").params.model_fields
    assert reg.build("d", "test", path="y") == ("test", "y")


def test_entries_record_their_origin_and_parts_carry_a_declared_record():
    reg = Registry("generator")

    class Tiny:
        def __init__(self, width: int = 2):
            self.width = width

    reg.register("tiny", Tiny, plugin="p", dist="imtrans-p", version="1.2")
    origin = {"plugin": "p", "dist": "imtrans-p", "version": "1.2"}
    assert reg.get("tiny").origin == origin
    rec = record_of(reg.build("tiny", width=3))
    assert rec == PartRecord("generator", "tiny", {"width": 3}, origin)
    assert rec.spec == {"name": "tiny", "width": 3}
    assert record_of(Tiny()) is None  # built outside a registry: no record, never a guessed one


def test_builtin_parts_record_the_imtrans_distribution():
    from imtrans import __version__, registry

    assert registry.part_origin("generator", "resnet") == {"plugin": "builtin", "dist": "imtrans", "version": __version__}
    assert registry.part_origin("generator", "no_such_part") == {}


def test_constructors_never_fetch_weights_build_part_does():
    from imtrans import registry
    from imtrans.build import build_part
    from imtrans.errors import ImtransError

    # the constructor only builds: a zoo name is recorded, not looked up (nothing is downloaded here)
    g = registry.build("generator", "resnet", ngf=4, n_blocks=1, pretrained="no_such_model")
    assert g.imtrans_part.params["pretrained"] == "no_such_model"
    with pytest.raises(ImtransError, match="unknown pretrained model 'no_such_model'"):
        build_part("generator", {"name": "resnet", "ngf": 4, "n_blocks": 1, "pretrained": "no_such_model"})
