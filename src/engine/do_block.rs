//! `DO [LANGUAGE plpgsql] $$ BEGIN … END $$` (#14) for the PL/pgSQL drivers' tests and
//! scripts use most: a block of `RAISE` statements (and `NULL;`). `RAISE NOTICE` /
//! `WARNING` / `INFO` send a notice with that severity (and its `USING ERRCODE`),
//! `RAISE EXCEPTION` fails the statement with its SQLSTATE (P0001 unless `USING
//! ERRCODE` names one), `DEBUG`/`LOG` go nowhere at the default client_min_messages.
//! `%` in the message takes the next argument (a literal). Any other PL/pgSQL
//! (declarations, assignments, loops, queries) is refused with 0A000: lakehouse has no
//! PL/pgSQL interpreter.

use crate::error::{Error, Result};
use crate::session::Session;

fn unsupported(what: &str) -> Error {
    Error::NotSupported(format!("{what} in a DO block (lakehouse runs DO blocks of RAISE statements only; PL/pgSQL is not there)"))
}

/// The block's body: the dollar- or single-quoted string after DO, with its language.
fn body(sql: &str) -> Result<String> {
    let rest = sql.trim().trim_end_matches(';').trim();
    let rest = rest.get(2..).filter(|_| rest[..2].eq_ignore_ascii_case("do")).ok_or_else(|| Error::Syntax("DO expected".into()))?;
    let mut rest = rest.trim_start();
    let mut language: Option<String> = None;
    let mut body: Option<String> = None;
    while !rest.is_empty() {
        if rest.len() >= 8 && rest[..8].eq_ignore_ascii_case("language") {
            let after = rest[8..].trim_start();
            let end = after.find(|c: char| c.is_whitespace()).unwrap_or(after.len());
            language = Some(after[..end].trim_matches('\'').trim_matches('"').to_ascii_lowercase());
            rest = after[end..].trim_start();
        } else if rest.starts_with('$') {
            let tag_end = rest[1..].find('$').ok_or_else(|| Error::Syntax("unterminated dollar-quoted string".into()))? + 2;
            let tag = &rest[..tag_end];
            let close = rest[tag_end..].find(tag).ok_or_else(|| Error::Syntax("unterminated dollar-quoted string".into()))? + tag_end;
            body = Some(rest[tag_end..close].to_string());
            rest = rest[close + tag.len()..].trim_start();
        } else if rest.starts_with('\'') {
            let (s, after) = quoted(rest)?;
            body = Some(s);
            rest = after.trim_start();
        } else {
            return Err(Error::Syntax(format!("syntax error in DO at \"{}\"", rest.chars().take(20).collect::<String>())));
        }
    }
    if let Some(l) = language.filter(|l| l != "plpgsql") {
        return Err(Error::State("42704", format!("language \"{l}\" does not exist")));
    }
    body.ok_or_else(|| Error::Syntax("DO needs a body: DO $$ BEGIN … END $$".into()))
}

/// A single-quoted literal at the start of `s` ('' for a quote), and what follows.
fn quoted(s: &str) -> Result<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1).peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            if chars.peek().is_some_and(|(_, n)| *n == '\'') {
                chars.next();
                out.push('\'');
                continue;
            }
            return Ok((out, &s[i + 1..]));
        }
        out.push(c);
    }
    Err(Error::Syntax("unterminated quoted string".into()))
}

/// The statements between BEGIN and END, split at semicolons outside quotes.
fn statements(body: &str) -> Result<Vec<String>> {
    let b = body.trim().trim_end_matches(';').trim();
    let lower = b.to_ascii_lowercase();
    if lower.starts_with("declare") {
        return Err(unsupported("DECLARE"));
    }
    if !lower.starts_with("begin") || !lower.ends_with("end") {
        return Err(Error::Syntax("a DO block is BEGIN … END".into()));
    }
    let inner = &b[5..b.len() - 3];
    let mut out = vec![];
    let mut current = String::new();
    let mut in_quote = false;
    for c in inner.chars() {
        match c {
            '\'' => {
                in_quote = !in_quote;
                current.push(c);
            }
            ';' if !in_quote => out.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    out.push(current);
    Ok(out.into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
}

/// Run one DO statement.
pub fn run(session: &Session, sql: &str) -> Result<()> {
    for statement in statements(&body(sql)?)? {
        let words: Vec<&str> = statement.split_whitespace().collect();
        match words.first().map(|w| w.to_ascii_lowercase()).as_deref() {
            Some("null") if words.len() == 1 => {}
            Some("raise") => raise(session, statement.trim_start()[5..].trim_start())?,
            Some(other) => return Err(unsupported(&format!("\"{other}\""))),
            None => {}
        }
    }
    Ok(())
}

fn raise(session: &Session, s: &str) -> Result<()> {
    let levels = ["debug", "log", "info", "notice", "warning", "exception"];
    let first = s.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
    let (level, rest) = match levels.iter().find(|l| **l == first) {
        Some(l) => (*l, s.trim_start()[first.len()..].trim_start()),
        None => ("exception", s),
    };
    if !rest.starts_with('\'') {
        return Err(unsupported("RAISE without a message literal"));
    }
    let (format, mut rest) = quoted(rest)?;
    // The arguments for %: literals.
    let mut args = vec![];
    loop {
        rest = rest.trim_start();
        let Some(after) = rest.strip_prefix(',') else { break };
        let after = after.trim_start();
        if after.starts_with('\'') {
            let (v, r) = quoted(after)?;
            args.push(v);
            rest = r;
        } else {
            let end = after.find(|c: char| c == ',' || c.is_whitespace()).unwrap_or(after.len());
            let v = &after[..end];
            if v.parse::<f64>().is_err() && !v.eq_ignore_ascii_case("null") {
                return Err(unsupported("a RAISE argument that is not a literal"));
            }
            args.push(if v.eq_ignore_ascii_case("null") { "<NULL>".to_string() } else { v.to_string() });
            rest = &after[end..];
        }
    }
    let mut message = String::new();
    let mut args = args.into_iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '%' {
            if chars.peek() == Some(&'%') {
                chars.next();
                message.push('%');
            } else {
                message.push_str(&args.next().ok_or_else(|| Error::State("42601", "too few parameters specified for RAISE".into()))?);
            }
        } else {
            message.push(c);
        }
    }
    if args.next().is_some() {
        return Err(Error::State("42601", "too many parameters specified for RAISE".into()));
    }
    // USING ERRCODE = '…' (HINT and DETAIL are accepted and not sent).
    let mut code: Option<String> = None;
    let rest = rest.trim_start();
    if !rest.is_empty() {
        let using = rest.get(..5).filter(|w| w.eq_ignore_ascii_case("using")).ok_or_else(|| Error::Syntax(format!("syntax error in RAISE at \"{rest}\"")))?;
        let mut opts = rest[using.len()..].trim_start();
        while !opts.is_empty() {
            let (name, after) = opts.split_once('=').ok_or_else(|| Error::Syntax("RAISE USING option = value".into()))?;
            let (value, after) = quoted(after.trim_start())?;
            if name.trim().eq_ignore_ascii_case("errcode") {
                if value.len() != 5 || !value.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()) {
                    return Err(Error::InvalidParameter(format!("unrecognized exception condition \"{value}\"")));
                }
                code = Some(value);
            }
            opts = after.trim_start().trim_start_matches(',').trim_start();
        }
    }
    match level {
        "exception" => Err(Error::State(leak(code.unwrap_or_else(|| "P0001".into())), message)),
        "notice" | "warning" | "info" => {
            session.notice_with(&level.to_ascii_uppercase(), code.as_deref().unwrap_or(if level == "warning" { "01000" } else { "00000" }), &message);
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Error::State takes a static SQLSTATE; the ones RAISE names are few and short.
fn leak(code: String) -> &'static str {
    static CODES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut known = CODES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = known.iter().find(|c| **c == code) {
        return c;
    }
    if known.len() >= 4096 {
        return "P0001";
    }
    let c: &'static str = Box::leak(code.into_boxed_str());
    known.push(c);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_of_raise() {
        assert_eq!(body("DO $$ BEGIN RAISE NOTICE 'x'; END $$ LANGUAGE plpgsql;").unwrap(), " BEGIN RAISE NOTICE 'x'; END ");
        assert_eq!(body("do language plpgsql $f$BEGIN NULL; END$f$").unwrap(), "BEGIN NULL; END");
        assert_eq!(body("DO $$ BEGIN END $$ LANGUAGE sql").unwrap_err().sqlstate(), "42704");
        assert_eq!(statements(" BEGIN RAISE NOTICE 'a;b'; NULL; END; ").unwrap(), vec!["RAISE NOTICE 'a;b'", "NULL"]);
        assert_eq!(statements("DECLARE x int; BEGIN END").unwrap_err().sqlstate(), "0A000");
    }
}
