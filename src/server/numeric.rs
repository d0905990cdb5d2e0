//! PostgreSQL's `numeric` on the wire for any Arrow Decimal128 (precision up to 38).
//! rust_decimal, which pgwire and postgres-types use, holds 28 digits, so a bare
//! `numeric` column (Decimal128(38, 10) here) used to travel as text, and a driver
//! that encodes by the described type (asyncpg) refused to bind a Python Decimal to
//! it. This is the binary form (base-10000 digit groups, PostgreSQL's
//! src/backend/utils/adt/numeric.c `numeric_send`/`numeric_recv`) and the text form
//! of an i128 with a scale, in both directions.

use std::error::Error as StdError;

use bytes::{BufMut, BytesMut};
use pgwire::types::FromSqlText;
use pgwire::types::ToSqlText;
use pgwire::types::format::FormatOptions;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

type BoxError = Box<dyn StdError + Sync + Send>;

/// The largest Decimal128 precision: values must stay below 10^38.
const MAX_DIGITS: usize = 38;

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;

/// A decimal `value × 10^-scale`, as Arrow's Decimal128 stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgNumeric {
    pub value: i128,
    pub scale: i8,
}

impl PgNumeric {
    /// The digits of |value| before and after the point (a negative scale multiplied
    /// out, at least one digit before the point).
    fn int_frac(&self) -> (String, String) {
        let mut digits = self.value.unsigned_abs().to_string();
        let scale = if self.scale < 0 {
            digits.extend(std::iter::repeat_n('0', self.scale.unsigned_abs() as usize));
            0
        } else {
            self.scale as usize
        };
        let digits = format!("{digits:0>width$}", width = scale + 1);
        let (int, frac) = digits.split_at(digits.len() - scale);
        (int.to_string(), frac.to_string())
    }
}

impl std::fmt::Display for PgNumeric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (int, frac) = self.int_frac();
        let sign = if self.value < 0 { "-" } else { "" };
        if frac.is_empty() { write!(f, "{sign}{int}") } else { write!(f, "{sign}{int}.{frac}") }
    }
}

/// A number too wide for Decimal128: numeric_value_out_of_range (22003), where a
/// malformed one is 22P02.
#[derive(Debug)]
pub struct Overflow(String);

impl std::fmt::Display for Overflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Overflow {}

fn overflow(text: &str) -> BoxError {
    Box::new(Overflow(format!("numeric value {text} does not fit lakehouse's numeric (at most {MAX_DIGITS} digits)")))
}

impl ToSql for PgNumeric {
    fn to_sql(&self, _ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        let (int, frac) = self.int_frac();
        let scale = frac.len();
        // Digit groups of four, aligned on the decimal point.
        let int = format!("{int:0>width$}", width = int.len().div_ceil(4) * 4);
        let frac = format!("{frac:0<width$}", width = frac.len().div_ceil(4) * 4);
        let mut groups: Vec<i16> = int
            .as_bytes()
            .chunks(4)
            .chain(frac.as_bytes().chunks(4))
            .map(|c| std::str::from_utf8(c).expect("ascii digits").parse::<i16>().expect("four digits"))
            .collect();
        let mut weight = (int.len() / 4) as i16 - 1;
        let leading = groups.iter().take_while(|g| **g == 0).count();
        groups.drain(..leading);
        weight -= leading as i16;
        while groups.last() == Some(&0) {
            groups.pop();
        }
        if groups.is_empty() {
            weight = 0;
        }
        out.put_i16(groups.len() as i16);
        out.put_i16(weight);
        out.put_u16(if self.value < 0 { NUMERIC_NEG } else { NUMERIC_POS });
        out.put_i16(scale as i16);
        for g in groups {
            out.put_i16(g);
        }
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }

    to_sql_checked!();
}

impl ToSqlText for PgNumeric {
    fn to_sql_text(&self, _ty: &Type, out: &mut BytesMut, _options: &FormatOptions) -> Result<IsNull, BoxError> {
        out.put_slice(self.to_string().as_bytes());
        Ok(IsNull::No)
    }
}

impl<'a> FromSql<'a> for PgNumeric {
    fn from_sql(_ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        let short = || -> BoxError { "numeric value is shorter than its header says".into() };
        let word = |i: usize| -> Result<u16, BoxError> {
            raw.get(i * 2..i * 2 + 2).map(|b| u16::from_be_bytes([b[0], b[1]])).ok_or_else(short)
        };
        let ndigits = word(0)? as i16;
        let weight = word(1)? as i16;
        let sign = word(2)?;
        let dscale = word(3)? as i16;
        match sign {
            NUMERIC_POS | NUMERIC_NEG => {}
            0xC000 => return Err("numeric NaN is not supported (lakehouse's numeric is a Decimal128)".into()),
            0xD000 | 0xF000 => return Err("numeric Infinity is not supported (lakehouse's numeric is a Decimal128)".into()),
            other => return Err(format!("invalid sign in external \"numeric\" value: {other:#06x}").into()),
        }
        if ndigits < 0 || dscale < 0 {
            return Err(format!("invalid external \"numeric\" value: {ndigits} digit groups, scale {dscale}").into());
        }
        if dscale > MAX_DIGITS as i16 {
            return Err(overflow(&format!("with scale {dscale}")));
        }
        // value × 10^dscale = Σ digit × 10^(4 × (weight − i) + dscale)
        let mut value: i128 = 0;
        for i in 0..ndigits as usize {
            let digit = word(4 + i)? as i16;
            if !(0..10000).contains(&digit) {
                return Err(format!("invalid digit in external \"numeric\" value: {digit}").into());
            }
            let exp = 4 * (weight as i32 - i as i32) + dscale as i32;
            let term = if exp >= 0 {
                10i128.checked_pow(exp as u32).and_then(|p| p.checked_mul(digit as i128))
            } else {
                Some(digit as i128 / 10i128.pow((-exp).min(4) as u32))
            };
            value = term.and_then(|t| value.checked_add(t)).ok_or_else(|| overflow("of this size"))?;
        }
        if value >= 10i128.pow(MAX_DIGITS as u32) {
            return Err(overflow(&PgNumeric { value, scale: dscale as i8 }.to_string()));
        }
        if sign == NUMERIC_NEG {
            value = -value;
        }
        Ok(PgNumeric { value, scale: dscale as i8 })
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}

impl<'a> FromSqlText<'a> for PgNumeric {
    fn from_sql_text(_ty: &Type, input: &'a [u8], _options: &FormatOptions) -> Result<Self, BoxError> {
        let text = std::str::from_utf8(input)?.trim();
        parse(text).ok_or_else(|| -> BoxError { format!("invalid input syntax for type numeric: \"{text}\"").into() })?
    }
}

/// `[+-]digits[.digits][e[+-]digits]` as PostgreSQL's numeric_in reads it; None when
/// it is not a number, an error when it is one too wide for Decimal128.
fn parse(text: &str) -> Option<Result<PgNumeric, BoxError>> {
    let (negative, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i32>().ok()?),
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut digits = format!("{int}{frac}");
    let mut scale = frac.len() as i32 - exp;
    if scale < 0 {
        digits.extend(std::iter::repeat_n('0', scale.unsigned_abs() as usize));
        scale = 0;
    }
    let significant = digits.trim_start_matches('0');
    if significant.len() > MAX_DIGITS || scale > MAX_DIGITS as i32 {
        return Some(Err(overflow(text)));
    }
    let value: i128 = if significant.is_empty() { 0 } else { significant.parse().ok()? };
    Some(Ok(PgNumeric { value: if negative { -value } else { value }, scale: scale as i8 }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(value: i128, scale: i8) -> PgNumeric {
        let mut out = BytesMut::new();
        PgNumeric { value, scale }.to_sql(&Type::NUMERIC, &mut out).unwrap();
        PgNumeric::from_sql(&Type::NUMERIC, &out).unwrap()
    }

    #[test]
    fn binary_form_is_postgres_base_10000() {
        // 12345.678 (scale 3): groups 1, 2345, 6780; weight 1; dscale 3.
        let mut out = BytesMut::new();
        PgNumeric { value: 12345678, scale: 3 }.to_sql(&Type::NUMERIC, &mut out).unwrap();
        let words: Vec<i16> = out.chunks(2).map(|c| i16::from_be_bytes([c[0], c[1]])).collect();
        assert_eq!(words, [3, 1, 0, 3, 1, 2345, 6780]);
        // -0.0001: one group (1) at weight -1.
        let mut out = BytesMut::new();
        PgNumeric { value: -1, scale: 4 }.to_sql(&Type::NUMERIC, &mut out).unwrap();
        let words: Vec<u16> = out.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
        assert_eq!(words, [1, (-1i16) as u16, NUMERIC_NEG, 4, 1]);
    }

    #[test]
    fn binary_roundtrips_to_38_digits() {
        let max = 10i128.pow(38) - 1;
        for (v, s) in [(0, 0), (0, 5), (1, 0), (-15, 1), (max, 0), (-max, 10), (max, 38), (120000, 0), (7, -3)] {
            let back = roundtrip(v, s);
            let expect = if s < 0 { PgNumeric { value: v * 10i128.pow(s.unsigned_abs() as u32), scale: 0 } } else { PgNumeric { value: v, scale: s } };
            assert_eq!(back, expect, "{v} scale {s}");
        }
    }

    #[test]
    fn text_forms() {
        assert_eq!(PgNumeric { value: 15, scale: 10 }.to_string(), "0.0000000015");
        assert_eq!(PgNumeric { value: -123456, scale: 2 }.to_string(), "-1234.56");
        assert_eq!(PgNumeric { value: 5, scale: -2 }.to_string(), "500");
        let p = |t: &str| parse(t).map(|r| r.map_err(|e| e.to_string()));
        assert_eq!(p("1.50"), Some(Ok(PgNumeric { value: 150, scale: 2 })));
        assert_eq!(p("-1e3"), Some(Ok(PgNumeric { value: -1000, scale: 0 })));
        assert_eq!(p("2.5E-3"), Some(Ok(PgNumeric { value: 25, scale: 4 })));
        assert_eq!(p(".5"), Some(Ok(PgNumeric { value: 5, scale: 1 })));
        assert_eq!(p("abc"), None);
        assert_eq!(p("."), None);
        assert!(matches!(p(&"9".repeat(39)), Some(Err(_))));
    }

    #[test]
    fn hostile_binary_is_an_error_not_a_panic() {
        for raw in [&[][..], &[0, 1], &[0, 1, 0, 0, 0, 0, 0, 0], &[0x7f, 0xff, 0x7f, 0xff, 0, 0, 0, 0, 0x27, 0x0f], &[0, 1, 0, 0, 0x12, 0x34, 0, 0, 0, 1]] {
            assert!(PgNumeric::from_sql(&Type::NUMERIC, raw).is_err(), "{raw:?}");
        }
        // A digit group far above the point overflows instead of wrapping.
        assert!(PgNumeric::from_sql(&Type::NUMERIC, &[0, 1, 0, 20, 0, 0, 0, 0, 0, 1]).is_err());
    }
}
