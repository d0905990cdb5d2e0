//! `current_setting(name [, missing_ok])` and `set_config(name, value, is_local)`,
//! PostgreSQL's function forms of SHOW and SET, which drivers and ORMs call at
//! connect (`SELECT current_setting('server_version_num')`, `set_config('search_path',
//! …, false)`). They read and write the session's settings, so they are answered
//! before planning: each call with constant arguments becomes its value (set_config
//! applies the setting then, once per statement — at Parse for a prepared one). A
//! call with other arguments answers 0A000.

use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Statement, Value, VisitMut, VisitorMut,
};

use crate::error::{Error, Result};
use crate::session::Session;

struct Settings<'a> {
    session: &'a Session,
    error: Option<Error>,
}

fn constant(e: &Expr) -> Option<Option<String>> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DollarQuotedString(datafusion::sql::sqlparser::ast::DollarQuotedString { value: s, .. }) => {
                Some(Some(s.clone()))
            }
            Value::Boolean(b) => Some(Some(b.to_string())),
            Value::Null => Some(None),
            _ => None,
        },
        Expr::Cast { expr, .. } | Expr::Nested(expr) => constant(expr),
        _ => None,
    }
}

fn text(v: Option<String>) -> Expr {
    match v {
        Some(s) => Expr::value(Value::SingleQuotedString(s)),
        None => Expr::Cast {
            kind: datafusion::sql::sqlparser::ast::CastKind::DoubleColon,
            expr: Box::new(Expr::value(Value::Null)),
            data_type: datafusion::sql::sqlparser::ast::DataType::Text,
            array: false,
            format: None,
        },
    }
}

impl Settings<'_> {
    fn answer(&self, name: &str, args: &[Option<Option<String>>]) -> Result<Option<Expr>> {
        let all_constant = args.iter().all(Option::is_some);
        match name {
            "current_setting" if matches!(args.len(), 1 | 2) => {
                if !all_constant {
                    return Err(Error::NotSupported("current_setting() with a non-constant argument".into()));
                }
                let Some(Some(setting)) = args[0].clone() else { return Ok(Some(text(None))) };
                let missing_ok = matches!(args.get(1), Some(Some(Some(b))) if b == "true" || b == "t" || b == "on");
                match self.session.get(&setting) {
                    Ok(v) => Ok(Some(text(Some(v)))),
                    Err(Error::UnknownSetting(_)) if missing_ok => Ok(Some(text(None))),
                    Err(Error::UnknownSetting(n)) => Err(Error::UnknownSetting(n)),
                    Err(e) => Err(e),
                }
            }
            "set_config" if args.len() == 3 => {
                if !all_constant {
                    return Err(Error::NotSupported("set_config() with a non-constant argument".into()));
                }
                let (Some(Some(setting)), Some(value)) = (args[0].clone(), args[1].clone()) else {
                    return Err(Error::InvalidParameter("SET requires parameter name".into()));
                };
                let value = value.unwrap_or_default();
                self.session.set(&setting, &value)?;
                Ok(Some(text(Some(self.session.get(&setting).unwrap_or(value)))))
            }
            _ => Ok(None),
        }
    }
}

impl VisitorMut for Settings<'_> {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> std::ops::ControlFlow<()> {
        let Expr::Function(f) = expr else { return std::ops::ControlFlow::Continue(()) };
        let name = f.name.to_string().to_lowercase();
        let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
        if name != "current_setting" && name != "set_config" {
            return std::ops::ControlFlow::Continue(());
        }
        let FunctionArguments::List(list) = &f.args else { return std::ops::ControlFlow::Continue(()) };
        let args: Vec<Option<Option<String>>> = list
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => constant(e),
                _ => None,
            })
            .collect();
        match self.answer(name, &args) {
            Ok(Some(e)) => *expr = e,
            Ok(None) => {}
            Err(e) => {
                self.error = Some(e);
                return std::ops::ControlFlow::Break(());
            }
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// Replace the calls in `statement` by their values.
pub fn answer(statement: &mut Statement, session: &Session) -> Result<()> {
    let mut v = Settings { session, error: None };
    let _ = statement.visit(&mut v);
    match v.error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
