"""Quantisers: exact formulas, bit order, Matryoshka commutes with quantisation."""

from __future__ import annotations

import numpy as np
import pytest

from pplx_demo import quantize as q

rng = np.random.default_rng(7)
X = rng.standard_normal((50, 96)).astype(np.float32)


def test_int8_tanh_formula_and_round_half_to_even():
    x = np.array([[0.0, 10.0, -10.0, np.arctanh(0.5 / 127), np.arctanh(1.5 / 127), -0.001]], np.float32)
    codes = q.int8_tanh(x)
    assert codes.dtype == np.int8
    # tanh * 127 = 0, 127, -127, 0.5 (-> 0, even), 1.5 (-> 2, even), ~-0.127 (-> 0)
    assert codes.tolist() == [[0, 127, -127, 0, 2, 0]]
    np.testing.assert_array_equal(q.int8_tanh(X), np.clip(np.round(np.tanh(X) * 127), -128, 127).astype(np.int8))


def test_binary_is_the_sign_of_the_float_not_of_the_int8_code():
    x = np.array([[-0.001, 0.0, 0.001, -5.0]], np.float32)
    assert q.int8_tanh(x)[0, 0] == 0
    assert q.binary_bits(x).tolist() == [[False, True, True, False]]
    np.testing.assert_array_equal(q.binary_signs(x), [[-1, 1, 1, -1]])


def test_bit_order_msb_first_and_lsb_first():
    bits = np.array([[1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0]], bool)  # 12 bits -> 2 bytes, zero padded
    assert q.pack_bits(bits, "big").tolist() == [[0b10000000, 0b11000000]]
    assert q.pack_bits(bits, "little").tolist() == [[0b00000001, 0b00000011]]
    for order in ("big", "little"):
        np.testing.assert_array_equal(q.unpack_bits(q.pack_bits(bits, order), 12, order), bits)
    assert q.binary_packed(X).shape == (50, 12)


@pytest.mark.parametrize("dim", [8, 32, 64])
def test_truncate_then_quantise_equals_quantise_then_truncate(dim):
    np.testing.assert_array_equal(q.int8_tanh(q.truncate(X, dim)), q.int8_tanh(X)[:, :dim])
    np.testing.assert_array_equal(q.binary_bits(q.truncate(X, dim)), q.binary_bits(X)[:, :dim])
    cal = q.calibrate_int8(X)
    np.testing.assert_array_equal(q.int8_calibrated(q.truncate(X, dim), cal.truncate(dim)),
                                  q.int8_calibrated(X, cal)[:, :dim])


def test_normalise_after_truncating():
    t = q.l2_normalize(q.truncate(X, 16))
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1.0, rtol=1e-6)
    assert not q.l2_normalize(np.zeros((1, 4), np.float32)).any()


def test_calibrated_int8_uses_corpus_ranges_and_round_trips():
    cal = q.calibrate_int8(X)
    codes = q.int8_calibrated(X, cal)
    assert codes.min() == -128 and codes.max() == 127  # the corpus spans the full code range
    back = q.int8_calibrated_dequantize(codes, cal)
    assert np.abs(back - X).max() <= cal.scale.max() / 2 + 1e-6
    query = X[:1] * 0.5  # a query is coded with the corpus calibration: not all zero
    assert np.count_nonzero(q.int8_calibrated(query, cal)) > 48
    with pytest.raises(ValueError):
        q.calibrate_int8(X[:1])  # calibrating on a single vector is the known all-zero bug


def test_tanh_dequantize_inverts_within_a_step():
    x = np.linspace(-2, 2, 101, dtype=np.float32)[None, :]
    back = q.int8_tanh_dequantize(q.int8_tanh(x))
    assert np.abs(np.tanh(back) - np.tanh(x)).max() <= 0.5 / 127 + 1e-6


def test_bytes_per_vector():
    assert [q.bytes_per_vector(1024, p) for p in q.PRECISIONS] == [4096, 1024, 128]
    assert q.bytes_per_vector(100, "binary") == 13
