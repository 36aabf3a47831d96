"""Rounding for display: decimal ROUND_HALF_UP to the paper's precision, once, at the end.

Values are stored unrounded; Python's float formatting rounds half to even on the binary value
(``f"{27.25:.1f}" == "27.2"``), which is not how papers round. A float is converted through ``repr``
(its shortest round-tripping text), so 27.25 is the decimal 27.25 and rounds to 27.3.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation


def to_decimal(value: float | int | str | Decimal) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None


def decimals_of(text: str) -> int:
    """Decimals as printed: ``"21.9"`` -> 1, ``"7"`` -> 0, ``"0.125"`` -> 3."""
    text = str(text).strip()
    return len(text.split(".", 1)[1]) if "." in text else 0


def round_half_up(value: float | int | str | Decimal, precision: int) -> Decimal:
    quantum = Decimal(1).scaleb(-precision)  # 10 ** -precision
    return to_decimal(value).quantize(quantum, rounding=ROUND_HALF_UP)


def fmt(value: float | int | str | Decimal, precision: int) -> str:
    """``fmt(27.25, 1) == "27.3"``; ``-0.0`` prints as ``0.0``."""
    rounded = round_half_up(value, precision)
    if rounded.is_zero():
        rounded = abs(rounded)
    return f"{rounded:.{precision}f}"


def fmt_signed(value: float | int | str | Decimal, precision: int) -> str:
    """Signed difference: ``+0.4``, ``-1.2``, ``±0.0`` for a zero after rounding."""
    rounded = round_half_up(value, precision)
    if rounded.is_zero():
        return "±" + f"{abs(rounded):.{precision}f}"
    return ("+" if rounded > 0 else "-") + f"{abs(rounded):.{precision}f}"
