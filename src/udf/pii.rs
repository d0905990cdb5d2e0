//! PII detection: what kind of personal data a value or a column holds (`email`,
//! `phone`, `person_name`, `ssn`, `credit_card`, `ip_address`).
//!
//! A value is classified only when the whole value has the shape (so free text that
//! mentions an address is not an email). A column is flagged from its name and a
//! sample of its values: a name hint (`email`, `phone_number`, `last_name`, …) needs
//! half of the sampled values to agree; without a hint, 80% of the values must have a
//! distinctive shape (emails, SSNs, Luhn-valid card numbers, IP addresses, phone
//! numbers written with separators). `pii_kind(text)` exposes the value rule in SQL.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result as DFResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PiiKind {
    Email,
    Phone,
    PersonName,
    Ssn,
    CreditCard,
    IpAddress,
}

impl PiiKind {
    pub fn name(self) -> &'static str {
        match self {
            PiiKind::Email => "email",
            PiiKind::Phone => "phone",
            PiiKind::PersonName => "person_name",
            PiiKind::Ssn => "ssn",
            PiiKind::CreditCard => "credit_card",
            PiiKind::IpAddress => "ip_address",
        }
    }
}

fn is_email(v: &str) -> bool {
    let Some((local, domain)) = v.split_once('@') else { return false };
    if local.is_empty() || local.len() > 64 || domain.contains('@') {
        return false;
    }
    let local_ok = local.chars().all(|c| c.is_ascii_alphanumeric() || "._%+-'".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| !l.is_empty() && l.chars().all(|c| c.is_alphanumeric() || c == '-'))
        && labels.last().is_some_and(|t| t.len() >= 2 && t.chars().all(|c| c.is_alphabetic()));
    local_ok && domain_ok
}

fn is_ssn(v: &str) -> bool {
    let parts: Vec<&str> = v.split('-').collect();
    parts.len() == 3
        && [3, 2, 4].iter().zip(&parts).all(|(n, p)| p.len() == *n && p.bytes().all(|b| b.is_ascii_digit()))
        && parts[0] != "000"
        && parts[0] != "666"
        && !parts[0].starts_with('9')
        && parts[1] != "00"
        && parts[2] != "0000"
}

fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut x = (*d - b'0') as u32;
        if i % 2 == 1 {
            x *= 2;
            if x > 9 {
                x -= 9;
            }
        }
        sum += x;
    }
    sum % 10 == 0
}

fn is_credit_card(v: &str) -> bool {
    if !v.chars().all(|c| c.is_ascii_digit() || c == ' ' || c == '-') {
        return false;
    }
    let digits: Vec<u8> = v.bytes().filter(|b| b.is_ascii_digit()).collect();
    (13..=19).contains(&digits.len()) && luhn(&digits) && digits.iter().any(|d| *d != b'0')
}

fn is_ip(v: &str) -> bool {
    if v.contains(':') {
        return v.parse::<std::net::Ipv6Addr>().is_ok();
    }
    v.parse::<std::net::Ipv4Addr>().is_ok()
}

/// A phone number: digits with the usual separators, 7 to 15 digits. `strong`: written
/// the way phone numbers are (a leading +, or separators) rather than a bare number.
fn phone_shape(v: &str) -> Option<bool> {
    if !v.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c)) {
        return None;
    }
    let digits = v.bytes().filter(|b| b.is_ascii_digit()).count();
    if !(7..=15).contains(&digits) || v.matches('+').count() > 1 || (v.contains('+') && !v.starts_with('+')) {
        return None;
    }
    // Dates (2024-01-31) and decimals (12345.678) are not phone numbers.
    let groups: Vec<&str> = v.split(|c: char| !c.is_ascii_digit()).filter(|g| !g.is_empty()).collect();
    if groups.len() == 3 && groups[0].len() == 4 && groups[1].len() == 2 && groups[2].len() == 2 {
        return None;
    }
    if groups.len() == 2 && v.contains('.') && !v.contains(' ') && !v.contains('-') {
        return None;
    }
    Some(v.starts_with('+') || groups.len() >= 2)
}

fn looks_like_person_name(v: &str) -> bool {
    let words: Vec<&str> = v.split_whitespace().collect();
    !words.is_empty()
        && words.len() <= 4
        && v.len() <= 60
        && words.iter().any(|w| w.chars().count() >= 2)
        && words.iter().all(|w| {
            w.chars().next().is_some_and(|c| c.is_uppercase())
                && w.chars().all(|c| c.is_alphabetic() || "'-.".contains(c))
        })
}

/// The kind of one value, by its shape alone (never `person_name`: a name is not
/// recognisable without context).
pub fn value_kind(v: &str) -> Option<PiiKind> {
    let v = v.trim();
    if v.is_empty() {
        return None;
    }
    if is_ssn(v) {
        Some(PiiKind::Ssn)
    } else if is_email(v) {
        Some(PiiKind::Email)
    } else if is_ip(v) {
        Some(PiiKind::IpAddress)
    } else if is_credit_card(v) && v.bytes().filter(|b| b.is_ascii_digit()).count() >= 13 && (v.contains(' ') || v.contains('-') || luhn_only_card(v)) {
        Some(PiiKind::CreditCard)
    } else if phone_shape(v) == Some(true) {
        Some(PiiKind::Phone)
    } else {
        None
    }
}

/// A bare 15/16-digit Luhn-valid number is a card number (13–19 digits otherwise need
/// grouping to be told from IDs).
fn luhn_only_card(v: &str) -> bool {
    matches!(v.len(), 15 | 16) && v.bytes().all(|b| b.is_ascii_digit())
}

fn tokens(column: &str) -> Vec<String> {
    // snake_case, kebab-case and camelCase words.
    let mut out = vec![];
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in column.chars() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// What a column's name suggests it holds.
pub fn name_hint(column: &str) -> Option<PiiKind> {
    let t = tokens(column);
    let has = |w: &str| t.iter().any(|x| x == w);
    let joined = t.join("");
    if has("email") || has("mail") || joined.contains("emailaddress") || joined == "email" {
        return Some(PiiKind::Email);
    }
    if has("ssn") || joined.contains("socialsecurity") {
        return Some(PiiKind::Ssn);
    }
    if joined.contains("creditcard") || joined.contains("cardnumber") || has("ccn") || joined == "ccnumber" || joined == "pan" {
        return Some(PiiKind::CreditCard);
    }
    if ["phone", "telephone", "tel", "mobile", "cell", "fax", "msisdn"].iter().any(|w| has(w)) || joined.contains("phonenumber") {
        return Some(PiiKind::Phone);
    }
    if has("ip") || has("ipv4") || has("ipv6") || joined.contains("ipaddress") || joined.contains("ipaddr") || joined == "remoteaddr" {
        return Some(PiiKind::IpAddress);
    }
    let name_word = has("name") || has("surname") || has("firstname") || has("lastname") || has("fullname");
    let person = ["first", "last", "full", "given", "family", "middle", "maiden", "sur", "person", "contact", "customer", "user", "employee", "owner", "patient"]
        .iter()
        .any(|w| has(w));
    if has("surname") || has("firstname") || has("lastname") || has("fullname") || (name_word && person) {
        return Some(PiiKind::PersonName);
    }
    None
}

/// Flag a column from its name and a sample of its (text) values.
pub fn column_kind(column: &str, values: &[&str]) -> Option<PiiKind> {
    let values: Vec<&str> = values.iter().map(|v| v.trim()).filter(|v| !v.is_empty()).collect();
    let n = values.len();
    let share = |f: &dyn Fn(&str) -> bool| values.iter().filter(|v| f(v)).count() as f64 / n.max(1) as f64;
    if let Some(kind) = name_hint(column) {
        if n == 0 {
            return Some(kind);
        }
        let agrees = match kind {
            PiiKind::PersonName => share(&looks_like_person_name),
            PiiKind::Phone => share(&|v| phone_shape(v).is_some()),
            PiiKind::CreditCard => share(&is_credit_card),
            PiiKind::Email => share(&is_email),
            PiiKind::Ssn => share(&|v| is_ssn(v) || (v.len() == 9 && v.bytes().all(|b| b.is_ascii_digit()))),
            PiiKind::IpAddress => share(&is_ip),
        };
        if agrees >= 0.5 {
            return Some(kind);
        }
    }
    if n == 0 {
        return None;
    }
    for kind in [PiiKind::Email, PiiKind::Ssn, PiiKind::CreditCard, PiiKind::IpAddress, PiiKind::Phone] {
        if share(&|v| value_kind(v) == Some(kind)) >= 0.8 {
            return Some(kind);
        }
    }
    None
}

/// `pii_kind(text) → text`: the kind of one value (NULL when none).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PiiKindUdf {
    signature: Signature,
}

impl PiiKindUdf {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(PiiKindUdf {
            signature: Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![DataType::Utf8]),
                    TypeSignature::Exact(vec![DataType::Utf8View]),
                    TypeSignature::Exact(vec![DataType::LargeUtf8]),
                ],
                Volatility::Immutable,
            ),
        })
    }
}

impl ScalarUDFImpl for PiiKindUdf {
    fn name(&self) -> &str {
        "pii_kind"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let input = datafusion::arrow::compute::cast(&arrays[0], &DataType::Utf8)?;
        let input = input.as_any().downcast_ref::<StringArray>().expect("cast to Utf8");
        let out: StringArray = (0..input.len())
            .map(|i| if input.is_null(i) { None } else { value_kind(input.value(i)).map(PiiKind::name) })
            .collect();
        let out: ArrayRef = Arc::new(out);
        if args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
            return Ok(ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&out, 0)?));
        }
        Ok(ColumnarValue::Array(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_classified_by_their_whole_shape() {
        assert_eq!(value_kind("ada@example.com"), Some(PiiKind::Email));
        assert_eq!(value_kind("write to ada@example.com please"), None);
        assert_eq!(value_kind("+1 (555) 010-9999"), Some(PiiKind::Phone));
        assert_eq!(value_kind("555-010-9999"), Some(PiiKind::Phone));
        assert_eq!(value_kind("2024-01-31"), None);
        assert_eq!(value_kind("123-45-6789"), Some(PiiKind::Ssn));
        assert_eq!(value_kind("4111 1111 1111 1111"), Some(PiiKind::CreditCard));
        assert_eq!(value_kind("4111111111111111"), Some(PiiKind::CreditCard));
        assert_eq!(value_kind("4111111111111112"), None);
        assert_eq!(value_kind("192.168.0.10"), Some(PiiKind::IpAddress));
        assert_eq!(value_kind("2001:db8::1"), Some(PiiKind::IpAddress));
        assert_eq!(value_kind("12:30"), None);
        assert_eq!(value_kind("3.14159"), None);
        assert_eq!(value_kind("Ada Lovelace"), None);
    }

    #[test]
    fn columns_need_names_and_values_to_agree() {
        let emails = ["a@x.io", "b@y.org", "c@z.com"];
        assert_eq!(column_kind("email", &emails), Some(PiiKind::Email));
        assert_eq!(column_kind("contact", &emails), Some(PiiKind::Email), "values alone, 80%+");
        let notes = ["email me at a@x.io", "call 555-010-9999 after 5", "no email given"];
        assert_eq!(column_kind("notes", &notes), None);
        assert_eq!(column_kind("email_notes", &notes), None, "hint but values disagree");
        assert_eq!(column_kind("phoneNumber", &["5550109999", "5550109998"]), Some(PiiKind::Phone));
        assert_eq!(column_kind("order_id", &["5550109999", "5550109998"]), None);
        assert_eq!(column_kind("last_name", &["Lovelace", "Hopper", "de Gaulle"]), Some(PiiKind::PersonName));
        assert_eq!(column_kind("name", &["Blue Widget", "Red Gadget"]), None, "bare name is not a person");
        assert_eq!(column_kind("customer_name", &["Ada Lovelace", "Grace Hopper"]), Some(PiiKind::PersonName));
        assert_eq!(column_kind("client_ip", &["10.0.0.1", "10.0.0.2"]), Some(PiiKind::IpAddress));
        assert_eq!(column_kind("ssn", &[]), Some(PiiKind::Ssn));
        assert_eq!(column_kind("description", &[]), None);
    }
}
