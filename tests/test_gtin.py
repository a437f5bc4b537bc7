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
