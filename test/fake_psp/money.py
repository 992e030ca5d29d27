"""Minor units <-> major-unit decimal strings by ISO 4217 exponent, without floats."""

import re

# currencies whose exponent is not 2 (everything else has 2)
EXPONENTS = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}


def exponent(currency):
    """The currency's number of decimal places."""
    return EXPONENTS.get(currency.upper(), 2)


def to_major(amount_minor, currency):
    """12345 CNY -> "123.45"; 100 JPY -> "100"."""
    exp = exponent(currency)
    sign = "-" if amount_minor < 0 else ""
    whole, frac = divmod(abs(int(amount_minor)), 10 ** exp)
    return f"{sign}{whole}.{frac:0{exp}d}" if exp else f"{sign}{whole}"


def to_minor(text, currency):
    """"123.45" CNY -> 12345; raises ValueError for anything that is not an exact decimal."""
    exp = exponent(currency)
    m = re.fullmatch(r"(\d{1,15})(?:\.(\d+))?", text or "")
    if not m:
        raise ValueError(f"not a decimal amount: {text!r}")
    frac = m.group(2) or ""
    if len(frac) > exp:
        raise ValueError(f"too many decimals for {currency}: {text!r}")
    return int(m.group(1)) * 10 ** exp + (int(frac.ljust(exp, "0")) if exp else 0)
