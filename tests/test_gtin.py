"""GTIN validation and normalisation: one canonical string per trade item."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum import ean

from colesbarcodes.gtin import GtinScope, InvalidGtin, normalize_gtin, parse_gtin


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("9300633600082", "9300633600082"),  # EAN-13 as a string
        (9300633600082, "9300633600082"),  # EAN-13 as a JSON number
        ("09300633600082", "9300633600082"),  # GTIN-14 with indicator 0 is the same item
        ("036000291452", "0036000291452"),  # UPC-A gets its leading zero
        (36000291452, "0036000291452"),  # UPC-A as a number has lost its leading zero
        ("96385074", "0000096385074"),  # EAN-8
        ("10036000291459", "10036000291459"),  # a real GTIN-14 (indicator 1) stays 14 digits
        (" 9300 6336-00082 ", "9300633600082"),  # spaces and dashes are separators
        (9300633600082.0, "9300633600082"),  # a float that is a whole number
    ],
)
def test_valid_codes_are_normalised_to_one_canonical_form(value: object, expected: str) -> None:
    assert normalize_gtin(value) == expected


@pytest.mark.parametrize("value", [None, "", "   "])
def test_absent_barcodes_are_none_not_errors(value: object) -> None:
    assert parse_gtin(value) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("9300633600083", "wrong check digit"),
        ("93006336000A2", "contains characters other than digits"),
        ("1234567", "too short"),
        ("123456789012345678", "too long"),
        ("0000000000000", "all zeros"),
        (True, "a boolean is not a barcode"),
        (-9300633600082, "not a positive number"),
        (93006336.5, "not a whole positive number"),
        (["9300633600082"], "unsupported type list"),
    ],
)
def test_invalid_codes_are_rejected_with_a_reason(value: object, reason: str) -> None:
    with pytest.raises(InvalidGtin) as excinfo:
        parse_gtin(value)
    assert reason in excinfo.value.reason


@pytest.mark.parametrize(
    ("code", "scope"),
    [
        ("9300633600082", GtinScope.GLOBAL),
        ("2012345000009", GtinScope.IN_STORE),  # 20-29: variable weight / in-store
        ("0264011000002", GtinScope.IN_STORE),  # 02: in-store (real Woolworths banana code)
        ("0412345000009", GtinScope.COMPANY_INTERNAL),  # 04: company-internal
    ],
)
def test_in_store_and_internal_codes_are_stored_but_flagged_as_not_global(
    code: str, scope: GtinScope
) -> None:
    digits = code[:-1]
    valid = digits + ean.calc_check_digit(digits)
    gtin = parse_gtin(valid)
    assert gtin is not None
    assert gtin.scope is scope
    assert gtin.is_global is (scope is GtinScope.GLOBAL)


@given(st.integers(min_value=10**6, max_value=10**13 - 1))
def test_normalising_is_idempotent_and_agrees_for_numbers_and_strings(body: int) -> None:
    digits = str(body)
    code = digits + ean.calc_check_digit(digits)
    if len(code) < 8:
        return
    canonical = normalize_gtin(code)
    assert canonical is not None
    assert normalize_gtin(canonical) == canonical
    assert normalize_gtin(int(code)) == canonical
    assert ean.is_valid(canonical)
    assert len(canonical) in (13, 14)


@given(
    st.one_of(
        st.text(max_size=30), st.integers(), st.floats(allow_nan=True), st.none(), st.booleans()
    )
)
def test_any_value_either_normalises_or_raises_invalid_gtin(value: object) -> None:
    try:
        result = normalize_gtin(value)
    except InvalidGtin as exc:
        assert exc.reason
    else:
        assert result is None or ean.is_valid(result)


def with_check_digit(body: str) -> str:
    return body + ean.calc_check_digit(body)


@given(st.integers(min_value=1, max_value=10**12 - 1))
def test_every_valid_ean13_is_its_own_canonical_form_in_any_written_form(body: int) -> None:
    code = with_check_digit(f"{body:012d}")
    assert ean.is_valid(code)
    assert normalize_gtin(code) == code
    assert normalize_gtin("0" + code) == code  # GTIN-14 with indicator digit 0
    assert normalize_gtin(f" {code[:4]}-{code[4:9]} {code[9:]} ") == code  # separators
    if int(code) >= 10**7:  # as a number (leading zeros lost) it still has 8 digits or more
        assert normalize_gtin(int(code)) == code
        assert normalize_gtin(float(int(code))) == code  # 13 digits are exact in a float


@given(st.integers(min_value=1, max_value=10**7 - 1))
def test_every_valid_ean8_is_stored_zero_padded_to_13_digits(body: int) -> None:
    code = with_check_digit(f"{body:07d}")
    assert normalize_gtin(code) == code.rjust(13, "0")


@given(st.integers(min_value=1, max_value=10**11 - 1))
def test_every_valid_upc_a_gains_its_leading_zero(body: int) -> None:
    code = with_check_digit(f"{body:011d}")
    assert normalize_gtin(code) == "0" + code


@given(st.integers(min_value=1, max_value=9), st.integers(min_value=0, max_value=10**12 - 1))
def test_a_real_gtin14_keeps_its_indicator_digit(indicator: int, body: int) -> None:
    code = with_check_digit(f"{indicator}{body:012d}")
    assert normalize_gtin(code) == code


BARCODE_LIKE = st.one_of(
    st.text(alphabet="0123456789 -", max_size=20),
    st.text(max_size=80),
    st.integers(),  # any size, far beyond 64 bits
    st.floats(allow_nan=True, allow_infinity=True),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.binary(max_size=14),
)


@given(BARCODE_LIKE)
def test_normalising_is_idempotent_and_the_canonical_form_is_a_valid_gtin(value: object) -> None:
    try:
        canonical = normalize_gtin(value)
    except InvalidGtin as exc:
        assert exc.reason
        assert len(exc.reason) < 100
        return
    if canonical is None:
        return
    assert ean.is_valid(canonical)
    assert len(canonical) in (13, 14)
    assert normalize_gtin(canonical) == canonical
    if int(canonical) >= 10**7:  # a number of fewer than 8 digits is too short to tell
        assert normalize_gtin(int(canonical)) == canonical


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        pytest.param(10**5000, "too long (more than 64 digits)", id="5000-digit number"),
        pytest.param(-(10**5000), "not a positive number", id="negative 5000-digit number"),
        pytest.param(" " * 100 + "9300633600082", "too long (113 characters)", id="padded"),
        pytest.param(float("inf"), "not a whole positive number", id="infinity"),
        pytest.param(1e308, "too long (309 digits, at most 14)", id="1e308"),
    ],
)
def test_absurd_values_are_refused_with_a_short_reason(value: object, reason: str) -> None:
    with pytest.raises(InvalidGtin) as excinfo:
        parse_gtin(value)
    assert excinfo.value.reason == reason
    assert len(str(excinfo.value)) < 200
