"""One configuration vocabulary: every spelling people type parses to the same IndexConfig, the canonical
text round-trips, and nonsense is refused with a message naming the field."""

from __future__ import annotations

import itertools

import pytest

from pplx_demo.errors import DemoError
from pplx_demo.index import DENSE_FAMILIES, FAMILIES, IndexConfig

pytestmark = pytest.mark.quick

RESCORE = IndexConfig("binary", "rescore")
ASYM = IndexConfig("binary", "asymmetric")


@pytest.mark.parametrize("text, expected", [
    # the three spellings of one configuration the old front ends wrote (UI, CLI, labels)
    ("binary + rescore", RESCORE),
    ("binary+rescore", RESCORE),
    ("binary + rescore(int8) x4", RESCORE),
    # older labels and the UI's old checkbox names
    ("binary + rescore(int8 calibrated) x4 @512d", IndexConfig("binary", "rescore", 512, int8_scheme="calibrated")),
    ("binary asymmetric", ASYM),
    ("binary+asymmetric", ASYM),
    ("binary+asym", ASYM),
    ("binary + asymmetric (float query)", ASYM),
    ("int8 (calibrated)", IndexConfig("int8", int8_scheme="calibrated")),
    # canonical forms and free spacing / case
    ("int8 tanh", IndexConfig("int8", int8_scheme="tanh")),
    ("binary + rescore x8 (float32)", IndexConfig("binary", "rescore", rescore_multiplier=8, rescore_with="float32")),
    ("  BINARY+RESCORE X2 @128D ", IndexConfig("binary", "rescore", 128, rescore_multiplier=2)),
    ("binary + rescore x 3", IndexConfig("binary", "rescore", rescore_multiplier=3)),
    ("fp32 @256", IndexConfig("float32", dim=256)),
    ("float32 @ 256 dims", IndexConfig("float32", dim=256)),
])
def test_every_spelling_parses_to_one_config(text, expected):
    assert IndexConfig.parse(text) == expected


def test_canonical_text_round_trips_for_every_config():
    configs = [IndexConfig(p) for p in ("float32", "binary")]
    configs += [IndexConfig("int8", int8_scheme=s) for s in (None, "tanh", "calibrated")]
    for dim, mult, scheme in itertools.product((None, 128, 1000), (1, 4, 16), (None, "tanh", "calibrated")):
        configs += [IndexConfig("binary", "rescore", dim, mult, "int8", scheme), IndexConfig("binary", "asymmetric", dim),
                    IndexConfig("binary", "rescore", dim, mult, "float32"), IndexConfig("float32", dim=dim)]
    for config in configs:
        assert IndexConfig.parse(str(config)) == config, str(config)
    assert str(IndexConfig("binary", "rescore", 512, int8_scheme="calibrated")) == \
        "binary + rescore x4 (int8 calibrated) @512d"


def test_defaults_apply_only_when_the_text_does_not_say():
    assert IndexConfig.parse("binary + rescore", dim=256, rescore_multiplier=9) == \
        IndexConfig("binary", "rescore", 256, rescore_multiplier=9)
    assert IndexConfig.parse("binary + rescore x2 @128d", dim=256, rescore_multiplier=9) == \
        IndexConfig("binary", "rescore", 128, rescore_multiplier=2)


def test_families_are_fields_and_parse_back():
    assert [IndexConfig.parse(f).family for f in DENSE_FAMILIES] == list(DENSE_FAMILIES)
    assert IndexConfig.parse("hybrid: BM25 + binary + rescore").family == "hybrid" == FAMILIES[-1]
    assert IndexConfig("binary", "rescore", 128).family == "binary + rescore"
    assert IndexConfig.parse_list("float32, binary+rescore,binary + rescore(int8) x4,int8") == [
        IndexConfig("float32"), RESCORE, IndexConfig("int8")]  # duplicates dropped, order kept


def test_hybrid_is_a_field_with_its_own_text():
    hybrid = IndexConfig.parse("hybrid: BM25 + binary + rescore x4 (int8 calibrated) (RRF k=30)")
    assert hybrid == IndexConfig("binary", "rescore", int8_scheme="calibrated", hybrid=True, rrf_k=30)
    assert hybrid.dense == IndexConfig("binary", "rescore", int8_scheme="calibrated")
    assert IndexConfig.parse(str(hybrid)) == hybrid
    assert IndexConfig.parse("hybrid bm25 + float32") == IndexConfig(hybrid=True)  # RRF k 60 by default
    for bad in ("hybrid: float32", "hybrid: BM25 +", "hybrid: BM25 + float32 (RRF k=x)"):
        with pytest.raises(DemoError):
            IndexConfig.parse(bad)


@pytest.mark.parametrize("text", ["", "   ", "int4", "float32 + rescore", "binary + rescore (int9)", "binary @",
                                  "binary ((", "binary + rescore x", "binary + teleport", "int8 + asymmetric",
                                  "binary + rescore x0", "binary @0d", "x" * 500, "binary + rescore (int8 raw)",
                                  "int8 tanh raw", "binary raw"])
def test_nonsense_is_refused_naming_the_field(text):
    with pytest.raises(DemoError) as err:
        IndexConfig.parse(text)
    assert err.value.field == "configuration" or "multiplier" in str(err.value) or "Matryoshka" in str(err.value)


def test_the_parser_is_linear_on_hostile_text():
    import time

    start = time.perf_counter()
    for text in ("binary " + "+ " * 20000, "(" * 50000, "binary " + "x" * 100_000):
        with pytest.raises(DemoError):
            IndexConfig.parse(text)
    assert time.perf_counter() - start < 1.0


def test_float_form_is_tanh_for_models_trained_with_tanh_and_raw_otherwise():
    assert str(IndexConfig("float32").resolved("tanh")) == "float32 tanh"  # pplx-embed's trained float form
    assert str(IndexConfig("float32").resolved("calibrated")) == "float32"  # the stand-in: the pooled vector
    assert str(IndexConfig.parse("float32 raw").resolved("tanh")) == "float32 raw"  # the labelled option stays
    rescored = IndexConfig.parse("binary + rescore x4 (float32)").resolved("tanh")
    assert str(rescored) == "binary + rescore x4 (float32 tanh)" and IndexConfig.parse(str(rescored)) == rescored
    assert IndexConfig("binary").resolved("tanh").float_form is None  # no float vectors, no float form
    with pytest.raises(DemoError, match="float form"):
        IndexConfig("int8", float_form="tanh")
