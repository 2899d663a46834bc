//! JSON numbers: a scanner that checks RFC 8259 number syntax while collecting the decimal
//! mantissa and exponent, and exact conversions of the common short numbers to `f64` and
//! `f32` that fall back to the standard library's (correctly rounded) parser for the rest.
//!
//! Every conversion here returns exactly what `str::parse` returns for the same text, bit
//! for bit; the fast paths only skip work where that is provably so (see [`Decimal::to_f64`]
//! and [`Decimal::to_f32`]).

/// The largest number of significant digits kept in [`Decimal::mantissa`]: 10^19 − 1 still
/// fits a `u64`.
const MAX_DIGITS: u32 = 19;

/// Powers of ten that `f64` represents exactly (10^22 = 2^22 · 5^22 and 5^22 < 2^53).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// 10^0 … 10^38, each the nearest `f64` (exact up to 10^22).
const POW10_NEAREST: [f64; 39] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22, 1e23, 1e24, 1e25, 1e26, 1e27, 1e28, 1e29, 1e30, 1e31, 1e32,
    1e33, 1e34, 1e35, 1e36, 1e37, 1e38,
];

/// 10^0 … 10^-37, each the nearest `f64`.
const NEG_POW10_NEAREST: [f64; 38] = [
    1e0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11, 1e-12, 1e-13, 1e-14,
    1e-15, 1e-16, 1e-17, 1e-18, 1e-19, 1e-20, 1e-21, 1e-22, 1e-23, 1e-24, 1e-25, 1e-26, 1e-27,
    1e-28, 1e-29, 1e-30, 1e-31, 1e-32, 1e-33, 1e-34, 1e-35, 1e-36, 1e-37,
];

/// Integer powers of ten up to 10^15, to move a short mantissa's excess exponent into it.
const POW10_INT: [u64; 16] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
    10_000_000_000,
    100_000_000_000,
    1_000_000_000_000,
    10_000_000_000_000,
    100_000_000_000_000,
    1_000_000_000_000_000,
];

/// 2^53: every integer up to it is an exact `f64`.
const MAX_EXACT_F64_INT: u64 = 1 << 53;

/// A scanned JSON number: `(-1)^negative · mantissa · 10^exponent`, unless `many_digits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decimal {
    pub(crate) negative: bool,
    /// The significant digits (leading zeros dropped), when there are at most 19 of them.
    pub(crate) mantissa: u64,
    /// The power of ten, clamped far beyond any finite `f64` (only meaningful when not
    /// `many_digits`).
    pub(crate) exponent: i64,
    /// More than 19 significant digits: `mantissa` and `exponent` are incomplete and the
    /// value must come from the text.
    pub(crate) many_digits: bool,
    /// Written with neither a fraction nor an exponent.
    pub(crate) integral: bool,
}

/// Exponents are clamped here while scanning: far past every finite and non-zero value,
/// and small enough that the arithmetic on them cannot overflow.
const EXPONENT_CLAMP: i64 = 1 << 20;

/// Scans the JSON number starting at `bytes[pos]` (`-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`),
/// returning it and the position just past it, or `None` when the text there is not a
/// JSON number. The number ends at the first byte that cannot continue it; the caller
/// checks that what follows is a delimiter.
#[inline(always)]
pub(crate) fn scan(bytes: &[u8], mut pos: usize) -> Option<(Decimal, usize)> {
    let negative = bytes.get(pos) == Some(&b'-');
    if negative {
        pos += 1;
    }
    // Digits accumulate with wrapping arithmetic; whether more than 19 of them were
    // significant (so the mantissa wrapped or lost digits) is worked out at the end.
    let int_start = pos;
    let (mut mantissa, mut digits) = digits(bytes, pos, 0);
    // One leading zero at most, and at least one digit.
    if digits == 0 || (digits > 1 && bytes.get(int_start) == Some(&b'0')) {
        return None;
    }
    pos += digits;
    let mut exponent = 0i64;
    let mut integral = true;
    if bytes.get(pos) == Some(&b'.') {
        integral = false;
        pos += 1;
        let frac_digits;
        (mantissa, frac_digits) = self::digits(bytes, pos, mantissa);
        if frac_digits == 0 {
            return None;
        }
        pos += frac_digits;
        digits += frac_digits;
        // At most the body's length: far below i64::MAX.
        exponent = -(frac_digits as i64);
    }
    let digits_end = pos;
    if let Some(b'e' | b'E') = bytes.get(pos) {
        integral = false;
        pos += 1;
        let exp_negative = match bytes.get(pos) {
            Some(b'-') => {
                pos += 1;
                true
            }
            Some(b'+') => {
                pos += 1;
                false
            }
            _ => false,
        };
        let exp_start = pos;
        let mut exp = 0i64;
        while let Some(&b @ b'0'..=b'9') = bytes.get(pos) {
            if exp < EXPONENT_CLAMP {
                exp = exp * 10 + i64::from(b - b'0');
            }
            pos += 1;
        }
        if pos == exp_start {
            return None;
        }
        exponent += if exp_negative { -exp } else { exp };
    }
    let mut many_digits = false;
    if digits > MAX_DIGITS as usize {
        // Leading zeros (and the point among them) are not significant, and added nothing
        // to the mantissa.
        let leading = bytes
            .get(int_start..digits_end)
            .unwrap_or_default()
            .iter()
            .take_while(|&&b| b == b'0' || b == b'.')
            .filter(|&&b| b == b'0')
            .count();
        many_digits = digits - leading > MAX_DIGITS as usize;
    }
    let exponent = exponent.clamp(-2 * EXPONENT_CLAMP, 2 * EXPONENT_CLAMP);
    Some((Decimal { negative, mantissa, exponent, many_digits, integral }, pos))
}

/// Appends the run of ASCII digits at `bytes[pos..]` to `acc` (wrapping), returning the new
/// value and the length of the run. Eight bytes are looked at a time.
#[inline(always)]
fn digits(bytes: &[u8], pos: usize, mut acc: u64) -> (u64, usize) {
    let mut i = pos;
    while let Some(chunk) = bytes.get(i..).and_then(<[u8]>::first_chunk::<8>) {
        // Digit values in the bytes of a run; the first non-digit byte (and a borrow it
        // causes, which only reaches the bytes after it) ends the run.
        let d = u64::from_le_bytes(*chunk).wrapping_sub(0x30 * ONES);
        let n = digit_run(d);
        acc = acc.wrapping_mul(POW10_INT[n]).wrapping_add(run_value(d, n));
        i += n;
        if n < 8 {
            return (acc, i - pos);
        }
    }
    while let Some(&b @ b'0'..=b'9') = bytes.get(i) {
        acc = acc.wrapping_mul(10).wrapping_add(u64::from(b - b'0'));
        i += 1;
    }
    (acc, i - pos)
}

const ONES: u64 = 0x0101_0101_0101_0101;

/// How many of the eight bytes of `d` (first byte lowest; ASCII minus `'0'`) are digits,
/// below 10, before the first that is not.
#[inline(always)]
fn digit_run(d: u64) -> usize {
    // A byte is not a digit when its high bit is set, or becomes set by adding 0x76
    // (10 + 0x76 = 0x80). A carry out of a byte only reaches later bytes, which follow a
    // non-digit anyway.
    let not_digit = (d | d.wrapping_add(0x76 * ONES)) & (0x80 * ONES);
    (not_digit.trailing_zeros() / 8) as usize
}

/// The value of the first `n` (≤ 8) bytes of `d`, digit values, first byte most
/// significant.
#[inline(always)]
fn run_value(d: u64, n: usize) -> u64 {
    // Shifted up so that zeros lead and the other bytes fall off: "12" → "00000012".
    // Nothing is left of no digits.
    let shift = u32::try_from(8 * (8 - n)).unwrap_or(64);
    let d = d.checked_shl(shift).unwrap_or(0);
    // Pairs, then quads, then all eight (the SWAR reduction used by fast_float).
    let d = d.wrapping_mul(10).wrapping_add(d >> 8);
    let lo = (d & 0x0000_00FF_0000_00FF).wrapping_mul(100 + (1_000_000 << 32));
    let hi = ((d >> 16) & 0x0000_00FF_0000_00FF).wrapping_mul(1 + (10_000 << 32));
    u64::from((lo.wrapping_add(hi) >> 32) as u32)
}

impl Decimal {
    /// The correctly rounded `f64`, when Clinger's fast path gives it: a mantissa below 2^53
    /// and a power of ten that is itself an exact `f64` make one IEEE multiplication or
    /// division, which rounds once, correctly. Exponents a little above 22 are folded into
    /// the mantissa when it stays exact.
    #[inline]
    pub(crate) fn to_f64(self) -> Option<f64> {
        if self.many_digits {
            return None;
        }
        let mut w = self.mantissa;
        let mut q = self.exponent;
        if w == 0 {
            return Some(if self.negative { -0.0 } else { 0.0 });
        }
        if w > MAX_EXACT_F64_INT {
            return None;
        }
        if q > 22 {
            let shift = usize::try_from(q - 22).ok()?;
            w = w.checked_mul(*POW10_INT.get(shift)?)?;
            if w > MAX_EXACT_F64_INT {
                return None;
            }
            q = 22;
        }
        let v = if q >= 0 {
            u64_to_f64(w) * POW10.get(usize::try_from(q).ok()?)?
        } else {
            u64_to_f64(w) / POW10.get(usize::try_from(-q).ok()?)?
        };
        Some(if self.negative { -v } else { v })
    }

    /// The correctly rounded `f32`, when it is certain. `v`, the mantissa (any 19 digits)
    /// times the nearest `f64` to 10^exponent, is three roundings away from the true value
    /// `x` (the mantissa's conversion, the power's and the product's), so
    /// |v − x| ≤ 3 · 2^-53 · |x|: at most three units in the last place of `v`. Rounding
    /// `x` to `f32` can differ from rounding `v` only if an `f32` rounding boundary lies
    /// between them: a midpoint between neighbouring `f32`s, or the overflow threshold, and
    /// all of those have their low 29 `f64` mantissa bits equal to 2^28. So when `v`'s low
    /// 29 bits are more than 8 units away from that pattern, `v as f32` is the correct
    /// result; otherwise the caller parses the text (about one number in 30 million). Only
    /// exponents from −37 to 38 are taken, so a non-zero `x` is at least 10^-37: a normal
    /// `f32` (or one that overflows), never one with the subnormal spacing.
    #[inline]
    pub(crate) fn to_f32(self) -> Option<f32> {
        if self.many_digits {
            return None;
        }
        let w = self.mantissa;
        let q = self.exponent;
        if w == 0 {
            return Some(if self.negative { -0.0 } else { 0.0 });
        }
        let scale = if q >= 0 {
            *POW10_NEAREST.get(usize::try_from(q).ok()?)?
        } else {
            *NEG_POW10_NEAREST.get(usize::try_from(-q).ok()?)?
        };
        let v = u64_to_f64(w) * scale;
        const LOW: u64 = (1 << 29) - 1;
        const MIDPOINT: u64 = 1 << 28;
        if (v.to_bits() & LOW).abs_diff(MIDPOINT) <= 8 {
            return None;
        }
        let v = v as f32;
        Some(if self.negative { -v } else { v })
    }

    /// The value as an integer when it was written as one with at most 19 digits.
    #[inline]
    pub(crate) fn to_i128(self) -> Option<i128> {
        if !self.integral || self.many_digits {
            return None;
        }
        let w = i128::from(self.mantissa);
        Some(if self.negative { -w } else { w })
    }
}

/// `w as f64` (rounded to nearest), through the one-instruction signed conversion when the
/// value allows, as it nearly always does.
#[inline(always)]
fn u64_to_f64(w: u64) -> f64 {
    match i64::try_from(w) {
        Ok(i) => i as f64,
        Err(_) => w as f64,
    }
}

/// Scans `tok` as one whole JSON number.
fn scan_whole(tok: &str) -> Option<Decimal> {
    match scan(tok.as_bytes(), 0) {
        Some((d, end)) if end == tok.len() => Some(d),
        _ => None,
    }
}

/// `tok.parse::<f64>()`, faster for short JSON numbers.
pub(crate) fn parse_f64(tok: &str) -> Result<f64, std::num::ParseFloatError> {
    match scan_whole(tok).and_then(|d| d.to_f64()) {
        Some(v) => Ok(v),
        None => tok.parse(),
    }
}

/// `tok.parse::<f32>()`, faster for short JSON numbers.
pub(crate) fn parse_f32(tok: &str) -> Result<f32, std::num::ParseFloatError> {
    match scan_whole(tok).and_then(|d| d.to_f32()) {
        Some(v) => Ok(v),
        None => tok.parse(),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn same_f64(tok: &str) -> Result<(), TestCaseError> {
        let want = tok.parse::<f64>().map(f64::to_bits).ok();
        let got = parse_f64(tok).map(f64::to_bits).ok();
        prop_assert_eq!(got, want, "f64 {}", tok);
        Ok(())
    }

    fn same_f32(tok: &str) -> Result<(), TestCaseError> {
        let want = tok.parse::<f32>().map(f32::to_bits).ok();
        let got = parse_f32(tok).map(f32::to_bits).ok();
        prop_assert_eq!(got, want, "f32 {}", tok);
        Ok(())
    }

    fn same_both(tok: &str) -> Result<(), TestCaseError> {
        same_f64(tok)?;
        same_f32(tok)
    }

    #[test]
    fn scans_json_number_syntax() {
        fn ok(s: &str) -> Option<&str> {
            scan(s.as_bytes(), 0).map(|(_, end)| &s[..end])
        }
        assert_eq!(ok("0"), Some("0"));
        assert_eq!(ok("-0.5e+3,"), Some("-0.5e+3"));
        assert_eq!(ok("12]"), Some("12"));
        assert_eq!(ok("1.5x"), Some("1.5"));
        for bad in ["", "-", "01", "-01", "1.", ".5", "1e", "1e+", "+1", "-.5", "1.e3", "x"] {
            assert_eq!(scan(bad.as_bytes(), 0), None, "{bad}");
        }
        let (d, _) = scan(b"-0.00120e2", 0).unwrap();
        assert_eq!((d.negative, d.mantissa, d.exponent), (true, 120, -3));
        assert!(!d.many_digits && !d.integral);
        let (d, _) = scan(b"12345678901234567890", 0).unwrap();
        assert!(d.many_digits && d.integral);
        let (d, _) = scan(b"1e99999999999999999999", 0).unwrap();
        assert_eq!(d.exponent, 2 * EXPONENT_CLAMP);
        assert_eq!(scan(b"-9223372036854775808", 0).unwrap().0.to_i128(), Some(-(1i128 << 63)));
    }

    #[test]
    fn edge_cases_match_std() {
        for tok in [
            "0",
            "-0",
            "-0.0",
            "0e999999",
            "-0e-5",
            "1e999",
            "-1e999",
            "1e-999",
            "9007199254740993",
            "9007199254740992",
            "900719925474099.3e1",
            "1e22",
            "1e23",
            "123456789e30",
            "1e37",
            "3.4028235e38",
            "3.4028236e38",
            "340282356779733661637539395458142568448",
            "340282356779733661637539395458142568447",
            "1.1754943e-38",
            "1e-45",
            "7e-46",
            "0.1",
            "0.30000000000000004",
            "2.2250738585072014e-308",
            "4.9e-324",
            "1.7976931348623157e308",
            "1.7976931348623159e308",
            "16777217",
            "16777216.5",
            "33554435",
            "0.000000000000000000000000000001",
            "1.00000005960464477539062500000000001",
            "1.000000059604644775390625",
            "9999999999999999999",
            "18446744073709551615e-19",
        ] {
            same_both(tok).unwrap();
        }
    }

    /// Decimal texts with few digits and exponents around the fast-path limits, and with
    /// many digits; f32 midpoints written out exactly.
    fn arb_decimal() -> impl Strategy<Value = String> {
        (
            any::<bool>(),
            "(0|[1-9][0-9]{0,24})",
            proptest::option::of("[0-9]{1,24}"),
            proptest::option::of((any::<bool>(), 0i32..60)),
        )
            .prop_map(|(neg, int, frac, exp)| {
                let mut s = String::new();
                if neg {
                    s.push('-');
                }
                s.push_str(&int);
                if let Some(f) = frac {
                    s.push('.');
                    s.push_str(&f);
                }
                if let Some((eneg, e)) = exp {
                    s.push_str(if eneg { "e-" } else { "e" });
                    s.push_str(&e.to_string());
                }
                s
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn arbitrary_decimals_parse_like_std(tok in arb_decimal()) {
            same_both(&tok)?;
        }

        #[test]
        fn arbitrary_text_parses_like_std(tok in "[-+0-9.eE]{0,12}") {
            same_both(&tok)?;
        }

        #[test]
        fn printed_f32_parse_like_std(bits in any::<u32>()) {
            let x = f32::from_bits(bits);
            if x.is_finite() {
                same_both(ryu::Buffer::new().format_finite(x))?;
                same_both(&format!("{x}"))?;
                same_both(&format!("{x:e}"))?;
                // The f64 repr of an f32 (what Python's json writes for float32 values).
                same_both(ryu::Buffer::new().format_finite(f64::from(x)))?;
                prop_assert_eq!(parse_f32(ryu::Buffer::new().format_finite(x)).ok(), Some(x));
            }
        }

        #[test]
        fn printed_f64_parse_like_std(bits in any::<u64>()) {
            let x = f64::from_bits(bits);
            if x.is_finite() {
                same_both(ryu::Buffer::new().format_finite(x))?;
                same_both(&format!("{x}"))?;
                same_both(&format!("{x:e}"))?;
                same_both(&format!("{x:.3e}"))?;
                prop_assert_eq!(parse_f64(ryu::Buffer::new().format_finite(x)).ok(), Some(x));
            }
        }

        /// Values near f32 midpoints, where rounding through f64 would go wrong.
        #[test]
        fn f32_midpoints_parse_like_std(bits in any::<u32>(), delta in -3i64..=3, digits in 8usize..20) {
            let x = f32::from_bits(bits & 0x7f7f_ffff);
            let next = f32::from_bits(x.to_bits() + 1);
            let mid = (f64::from(x) + f64::from(next)) / 2.0;
            let mid = f64::from_bits(mid.to_bits().wrapping_add_signed(delta));
            same_both(&format!("{mid:.digits$e}"))?;
            same_both(&format!("{mid:e}"))?;
        }

        #[test]
        fn digit_runs_match_a_byte_loop(text in "[0-9]{0,20}[^0-9]?[0-9a/:\\x{ff}]{0,9}", at in 0usize..4) {
            let bytes = text.as_bytes();
            let at = at.min(bytes.len());
            let run = bytes[at..].iter().take_while(|b| b.is_ascii_digit()).count();
            let want = bytes[at..at + run]
                .iter()
                .fold(7u64, |acc, b| acc.wrapping_mul(10).wrapping_add(u64::from(b - b'0')));
            prop_assert_eq!(digits(bytes, at, 7), (want, run));
        }

        #[test]
        fn small_integers_and_decimals(m in 0u64..100_000_000, e in -25i32..25) {
            same_both(&format!("{m}e{e}"))?;
            same_both(&format!("-{m}e{e}"))?;
        }
    }
}
