"""Fuzz recipe loading and ``--set`` parsing: every input gives a valid Recipe or one RecipeError.

Bounded: ``EXAMPLES`` examples per property (hypothesis, ``deadline=None``, derandomised so CI
is reproducible).  Each test runs its property to the end and then checks that exactly ``EXAMPLES``
inputs were tried and that both outcomes (a valid recipe, a RecipeError) came up, so a fuzzer that
silently stops generating, or a loader that accepts or refuses everything, fails the test.  The counts
are printed with ``-s`` and recorded in docs/reliability.md.
"""

from __future__ import annotations

import collections

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imtrans.errors import ImtransError, RecipeError
from imtrans.recipe import Recipe, apply_overrides, load_recipe, parse_override, recipe_from_dict

EXAMPLES = 400
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

SECTIONS = {
    "data": ["root", "dataset", "a", "b", "test_a", "test_b", "augment", "batch_size", "workers", "cache"],
    "model": ["generator", "discriminator", "generator_b", "discriminator_b"],
    "optim": ["name", "lr", "lr_d", "betas", "weight_decay"],
    "train": ["epochs", "epochs_decay", "lr_policy", "lr_step_epochs", "steps_per_epoch", "max_steps", "seed",
              "device", "precision", "compile", "deterministic", "log_every", "sample_every", "checkpoint_every",
              "save_every_epochs", "eval_every", "eval_images"],
    "output": ["root", "name", "tensorboard", "loggers"],
    "scheme": ["name", "pool_size", "lambda_A", "lambda_B"],
    "losses": ["gan", "cycle", "identity", "nce"],
}
PART_NAMES = ["resnet", "unet", "patchgan", "cyclegan", "synthetic", "folder", "layout", "resize_and_crop",
              "gan", "cycle", "l1", "nope", ""]
PARAMS = ["name", "ngf", "ndf", "n_blocks", "n_layers", "norm", "weight", "path", "side", "count", "size",
          "load_size", "crop_size", "flip", "mode", "task", "extends", "kind"]

key_text = st.one_of(st.sampled_from(sorted({k for v in SECTIONS.values() for k in v} | set(SECTIONS) | set(PARAMS))),
                     st.text(min_size=0, max_size=8))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-3, 300), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(PART_NAMES + ["fp32", "bf16", "linear", "adam", "cpu", "auto", "instance"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(key_text, inner, max_size=3)), max_leaves=8)
part = st.fixed_dictionaries({"name": st.one_of(st.sampled_from(PART_NAMES), scalars)},
                             optional={k: values for k in PARAMS[1:]})


@st.composite
def recipe_dicts(draw):
    out = {}
    for sec in draw(st.lists(st.sampled_from(sorted(SECTIONS) + ["description", "extends", "bogus"]), max_size=5)):
        if sec in ("description", "extends", "bogus"):
            out[sec] = draw(values)
            continue
        if sec == "scheme":
            out[sec] = draw(st.one_of(part, values))
            continue
        table = {}
        for k in draw(st.lists(st.sampled_from(SECTIONS[sec]), max_size=4)):
            table[k] = draw(st.one_of(part, values))
        out[sec] = draw(st.one_of(st.just(table), values)) if draw(st.booleans()) else table
    return out


def toml_value(v) -> str:
    import tomli_w

    try:
        return tomli_w.dumps({"v": v})[4:].strip() if not isinstance(v, dict) else "{}"
    except (TypeError, ValueError):
        return '"x"'


@st.composite
def toml_texts(draw):
    """TOML-ish text: mostly well-formed lines of recipe keys, with random breakage mixed in."""
    lines = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.integers(0, 5))
        if kind == 0:
            sec = draw(st.sampled_from(sorted(SECTIONS) + ["data.a", "model.generator", "losses.gan", "x"]))
            lines.append(f"[{sec}]")
        elif kind in (1, 2, 3):
            k = draw(st.sampled_from(sorted({k for v in SECTIONS.values() for k in v} | set(PARAMS))))
            lines.append(f"{k} = {toml_value(draw(scalars))}")
        elif kind == 4:
            lines.append(draw(st.text(max_size=20)))
        else:
            lines.append(draw(st.sampled_from(['extends = "nope.toml"', "extends = 3", 'extends = "self.toml"',
                                               "[[data]]", "a.b.c = 1", '"quoted key" = 1', "x = [1, [2, [3]]]",
                                               "name = 'resnet'", "= 1", "[data", "v = 1979-05-27T07:32:00Z",
                                               "x = " + "[" * 2000 + "]" * 2000, "y = " + "{a=" * 50 + "1" + "}" * 50,
                                               "lr = inf", "lr = nan", "weight = -inf", "betas = [0.5, 2.0]"])))
    return "\n".join(lines)


def outcome(fn, *args, **kw):
    """Call and classify; any exception other than an ImtransError fails the test with its traceback."""
    try:
        r = fn(*args, **kw)
    except RecipeError as e:
        msg = str(e)
        assert msg and "Traceback" not in msg
        return "RecipeError"
    except ImtransError as e:  # pragma: no cover - would be reported, but is still a clean error
        return f"ImtransError:{type(e).__name__}"
    if isinstance(r, Recipe):
        # a valid recipe survives its own round trip
        import tomllib

        again = recipe_from_dict(tomllib.loads(r.to_toml()))
        assert again.to_dict() == r.to_dict()
    return "ok"


def check_counts(kind: str, outcomes: collections.Counter) -> None:
    """The property ran ``EXAMPLES`` inputs, and the fuzzer reached both valid and invalid recipes."""
    print(f"\nfuzz {kind}: {sum(outcomes.values())} examples; outcomes: {dict(outcomes)}")
    assert sum(outcomes.values()) == EXAMPLES, dict(outcomes)
    assert outcomes["ok"] > 0 and outcomes["RecipeError"] > 0, dict(outcomes)


def test_fuzz_recipe_files(tmp_path):
    outcomes: collections.Counter = collections.Counter()
    f = tmp_path / "self.toml"

    @FUZZ
    @given(text=toml_texts())
    def prop(text):
        f.write_text(text, encoding="utf-8")
        outcomes[outcome(load_recipe, f)] += 1

    prop()
    check_counts("toml text", outcomes)


def test_fuzz_arbitrary_text_files(tmp_path):
    outcomes: collections.Counter = collections.Counter()
    f = tmp_path / "arb.toml"

    @FUZZ
    @given(text=st.text(max_size=200))
    def prop(text):
        f.write_text(text, encoding="utf-8")
        outcomes[outcome(load_recipe, f)] += 1

    prop()
    check_counts("arbitrary text", outcomes)


def test_fuzz_recipe_dicts():
    outcomes: collections.Counter = collections.Counter()

    @FUZZ
    @given(data=recipe_dicts())
    def prop(data):
        outcomes[outcome(recipe_from_dict, data)] += 1

    prop()
    check_counts("dict", outcomes)


override_keys = st.one_of(
    st.sampled_from([f"{s}.{k}" for s, ks in sorted(SECTIONS.items()) for k in ks]),
    st.builds(lambda s, k: f"{s}.{k}", st.sampled_from(sorted(SECTIONS)), st.sampled_from(sorted({k for v in SECTIONS.values() for k in v} | set(PARAMS)))),
    st.builds(lambda s, k, p: f"{s}.{k}.{p}", st.sampled_from(["data", "model", "losses", "scheme"]),
              st.sampled_from(["a", "generator", "gan", "augment", "name"]), st.sampled_from(PARAMS)),
    st.text(max_size=15),
)
override_values = st.one_of(st.text(max_size=15), scalars.map(toml_value),
                            st.sampled_from(["", " ", "[", "{a=1}", "{ name = 'resnet' }", "1e400", "nan", "inf",
                                             "-inf", "0x10", "1_000", "'''x'''", '"""', "true false", "a=b=c",
                                             "[1,2]", "2024-01-01", "\n", "1\nx = 2", "[" * 300 + "]" * 300,
                                             "[" * 40 + "]" * 40, "{a={b={c={d=1}}}}", "../../x", "/abs", "0.5",
                                             "[0.5, 0.999]", "[0.5, 1.5]", "99999999999999999999999"]))
overrides = st.one_of(st.builds(lambda k, v: f"{k}={v}", override_keys, override_values), st.text(max_size=30))

BASE = {
    "data": {"a": {"name": "synthetic", "side": "a", "count": 4, "size": 32},
             "b": {"name": "synthetic", "side": "b", "count": 4, "size": 32}},
    "model": {"generator": {"name": "resnet", "ngf": 4, "n_blocks": 1}},
    "train": {"epochs": 1},
}


def test_fuzz_set_overrides():
    outcomes: collections.Counter = collections.Counter()

    @FUZZ
    @given(sets=st.lists(overrides, min_size=1, max_size=4))
    def prop(sets):
        def go():
            for s in sets:
                parse_override(s)
            data, origin = apply_overrides(BASE, sets)
            return recipe_from_dict(data, "base.toml", origin)

        outcomes[outcome(go)] += 1

    prop()
    check_counts("--set", outcomes)


def test_what_the_fuzzer_found(tmp_path):
    """Regressions: each of these once escaped as a RecursionError or was accepted and failed later in training."""
    bad = [
        ["x=" + "[" * 2000 + "]" * 2000],             # RecursionError from tomllib
        ["data.a.count=" + "[" * 100 + "]" * 100],    # nesting beyond MAX_DEPTH
        ["optim.lr=inf"], ["optim.betas=[inf, 0.9]"], ["optim.betas=[0.5, 1.5]"],  # NaN training at step 1
        ["losses.gan={name='gan', weight=nan}"],
        ["train.seed=99999999999999999999999"],       # torch.manual_seed overflow at train time
        ["output.name=../../elsewhere"], ["output.name=/tmp/abs"],  # run directory outside output.root
    ]
    for sets in bad:
        try:
            data, origin = apply_overrides(BASE, sets)
            recipe_from_dict(data, "base.toml", origin)
        except RecipeError:
            continue
        raise AssertionError(f"accepted: {sets}")
    f = tmp_path / "deep.toml"
    f.write_text("x = " + "[" * 5000 + "]" * 5000)
    try:
        load_recipe(f)
    except RecipeError as e:
        assert "nested" in str(e)
    else:
        raise AssertionError("deep file accepted")
    ok = recipe_from_dict(apply_overrides(BASE, ["output.name=exp/run1", "optim.betas=[0.9, 0.99]"])[0])
    assert ok.output.name == "exp/run1" and ok.optim.betas == (0.9, 0.99)
