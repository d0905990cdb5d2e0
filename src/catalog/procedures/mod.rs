//! `CALL name(args)`: stored procedures, one file per procedure. This file is the
//! whole procedure surface: [`all`] lists every procedure the engine knows.
//!
//! Arguments are literals, positional or named (`name => value`), bound to each
//! procedure's declared parameters before it runs; a procedure returns record batches
//! like any query so psql shows what it did.

mod attach;
mod autotune;
mod autotune_enqueue;
mod create_bucket;
mod create_eval_set;
mod create_model;
mod detach;
mod drop_bucket;
mod drop_model;
mod ingest;
mod promote;
mod rollback;
mod run_trial;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, UnaryOperator, Value,
};

use crate::engine::{Engine, Session};
use crate::error::{Error, Result};

pub use attach::AttachProcedure;
pub use create_bucket::CreateBucketProcedure;
pub use detach::DetachProcedure;
pub use ingest::IngestProcedure;
pub use drop_bucket::DropBucketProcedure;
pub use create_model::CreateModelProcedure;
pub use drop_model::DropModelProcedure;
pub use autotune::AutotuneProcedure;
pub use autotune_enqueue::AutotuneEnqueueProcedure;
pub use create_eval_set::CreateEvalSetProcedure;
pub use promote::PromoteProcedure;
pub use rollback::RollbackProcedure;
pub use run_trial::RunTrialProcedure;

/// Every procedure, by SQL name.
pub fn all() -> Vec<Arc<dyn Procedure>> {
    vec![
        Arc::new(CreateBucketProcedure),
        Arc::new(DropBucketProcedure),
        Arc::new(CreateModelProcedure),
        Arc::new(DropModelProcedure),
        Arc::new(CreateEvalSetProcedure),
        Arc::new(RunTrialProcedure),
        Arc::new(AutotuneProcedure),
        Arc::new(PromoteProcedure),
        Arc::new(RollbackProcedure),
        Arc::new(AutotuneEnqueueProcedure),
        Arc::new(AttachProcedure),
        Arc::new(DetachProcedure),
        Arc::new(IngestProcedure),
    ]
}

/// An optional integer argument that must be positive (22023 otherwise).
pub fn positive(args: &Args, name: &str) -> Result<Option<usize>> {
    match args.int(name) {
        None => Ok(None),
        Some(v) if v > 0 => Ok(Some(v as usize)),
        Some(v) => Err(Error::InvalidParameter(format!("{name} must be a positive integer, got {v}"))),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    Text,
    Int,
    Float,
    Bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub ty: ParamType,
    pub required: bool,
}

impl Param {
    pub const fn required(name: &'static str, ty: ParamType) -> Param {
        Param { name, ty, required: true }
    }
    pub const fn optional(name: &'static str, ty: ParamType) -> Param {
        Param { name, ty, required: false }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ArgValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

/// Arguments bound to a procedure's parameters by name.
#[derive(Debug, Default)]
pub struct Args {
    values: HashMap<&'static str, ArgValue>,
}

impl Args {
    pub fn text(&self, name: &str) -> Option<&str> {
        match self.values.get(name) {
            Some(ArgValue::Text(s)) => Some(s),
            _ => None,
        }
    }
    pub fn required_text(&self, name: &str) -> Result<&str> {
        self.text(name).ok_or_else(|| Error::invalid(format!("argument {name} is required")))
    }
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.values.get(name) {
            Some(ArgValue::Int(i)) => Some(*i),
            _ => None,
        }
    }
    pub fn float(&self, name: &str) -> Option<f64> {
        match self.values.get(name) {
            Some(ArgValue::Float(f)) => Some(*f),
            Some(ArgValue::Int(i)) => Some(*i as f64),
            _ => None,
        }
    }
    pub fn bool(&self, name: &str) -> Option<bool> {
        match self.values.get(name) {
            Some(ArgValue::Bool(b)) => Some(*b),
            _ => None,
        }
    }
}

#[async_trait]
pub trait Procedure: Send + Sync {
    fn name(&self) -> &'static str;
    fn params(&self) -> &'static [Param];
    /// The schema of the rows `call` returns (sent on Describe before execution).
    fn output_schema(&self) -> SchemaRef;
    async fn call(&self, engine: &Engine, session: &Session, args: Args) -> Result<Vec<RecordBatch>>;
}

/// Turn the parsed argument list into literal values, positional and named.
pub fn literal_args(args: &FunctionArguments) -> Result<(Vec<ArgValue>, Vec<(String, ArgValue)>)> {
    let list = match args {
        FunctionArguments::None => return Ok((vec![], vec![])),
        FunctionArguments::List(list) => list,
        FunctionArguments::Subquery(_) => {
            return Err(Error::invalid("procedure arguments must be literals, not a subquery"));
        }
    };
    let mut positional = vec![];
    let mut named: Vec<(String, ArgValue)> = vec![];
    for arg in &list.args {
        match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => {
                if !named.is_empty() {
                    return Err(Error::Syntax(
                        "positional argument cannot follow named argument".into(),
                    ));
                }
                positional.push(literal(e)?);
            }
            FunctionArg::Named { name, arg: FunctionArgExpr::Expr(e), .. } => {
                named.push((name.value.to_lowercase(), literal(e)?));
            }
            FunctionArg::ExprNamed { name: Expr::Identifier(name), arg: FunctionArgExpr::Expr(e), .. } => {
                named.push((name.value.to_lowercase(), literal(e)?));
            }
            other => return Err(Error::invalid(format!("unsupported procedure argument {other}"))),
        }
    }
    Ok((positional, named))
}

fn literal(e: &Expr) -> Result<ArgValue> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Null => Ok(ArgValue::Null),
            Value::Boolean(b) => Ok(ArgValue::Bool(*b)),
            Value::Number(n, _) => match n.parse::<i64>() {
                Ok(i) => Ok(ArgValue::Int(i)),
                Err(_) => n
                    .parse::<f64>()
                    .map(ArgValue::Float)
                    .map_err(|_| Error::invalid(format!("invalid number {n}"))),
            },
            other => match other.clone().into_string() {
                Some(s) => Ok(ArgValue::Text(s)),
                None => Err(Error::invalid(format!("unsupported literal {other}"))),
            },
        },
        Expr::UnaryOp { op: UnaryOperator::Minus, expr } => match literal(expr)? {
            ArgValue::Int(i) => Ok(ArgValue::Int(-i)),
            ArgValue::Float(f) => Ok(ArgValue::Float(-f)),
            _ => Err(Error::invalid(format!("cannot negate {expr}"))),
        },
        Expr::Nested(inner) => literal(inner),
        other => Err(Error::invalid(format!(
            "procedure arguments must be literals; got {other}"
        ))),
    }
}

/// Bind positional then named arguments to `params`, checking types and presence.
pub fn bind(proc_name: &str, params: &'static [Param], positional: Vec<ArgValue>, named: Vec<(String, ArgValue)>) -> Result<Args> {
    let signature = || {
        params
            .iter()
            .map(|p| if p.required { p.name.to_string() } else { format!("[{} => …]", p.name) })
            .collect::<Vec<_>>()
            .join(", ")
    };
    if positional.len() > params.len() {
        return Err(Error::invalid(format!(
            "{proc_name} takes at most {} arguments, got {}; usage: CALL {proc_name}({})",
            params.len(),
            positional.len(),
            signature()
        )));
    }
    let mut args = Args::default();
    for (p, v) in params.iter().zip(positional) {
        args.values.insert(p.name, check_type(proc_name, p, v)?);
    }
    for (name, v) in named {
        let p = params.iter().find(|p| p.name == name).ok_or_else(|| {
            Error::invalid(format!(
                "{proc_name} has no parameter named {name}; usage: CALL {proc_name}({})",
                signature()
            ))
        })?;
        if args.values.contains_key(p.name) {
            return Err(Error::invalid(format!("argument {name} given more than once")));
        }
        args.values.insert(p.name, check_type(proc_name, p, v)?);
    }
    args.values.retain(|_, v| *v != ArgValue::Null);
    for p in params.iter().filter(|p| p.required) {
        if !args.values.contains_key(p.name) {
            return Err(Error::invalid(format!(
                "{proc_name} needs argument {}; usage: CALL {proc_name}({})",
                p.name,
                signature()
            )));
        }
    }
    Ok(args)
}

fn check_type(proc_name: &str, p: &Param, v: ArgValue) -> Result<ArgValue> {
    let ok = match (&v, p.ty) {
        (ArgValue::Null, _) => true,
        (ArgValue::Text(_), ParamType::Text)
        | (ArgValue::Int(_), ParamType::Int)
        | (ArgValue::Int(_) | ArgValue::Float(_), ParamType::Float)
        | (ArgValue::Bool(_), ParamType::Bool) => true,
        _ => false,
    };
    if ok {
        Ok(v)
    } else {
        Err(Error::invalid(format!(
            "argument {} of {proc_name} must be {:?}, got {v:?}",
            p.name, p.ty
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARAMS: &[Param] = &[
        Param::required("name", ParamType::Text),
        Param::optional("k", ParamType::Int),
        Param::optional("recall", ParamType::Float),
    ];

    #[test]
    fn binds_positional_and_named() {
        let a = bind(
            "p",
            PARAMS,
            vec![ArgValue::Text("x".into())],
            vec![("recall".into(), ArgValue::Int(1)), ("k".into(), ArgValue::Int(5))],
        )
        .unwrap();
        assert_eq!(a.text("name"), Some("x"));
        assert_eq!(a.int("k"), Some(5));
        assert_eq!(a.float("recall"), Some(1.0));
    }

    #[test]
    fn rejects_bad_calls() {
        let cases = vec![
            (vec![], vec![]),
            (vec![ArgValue::Int(1)], vec![]),
            (vec![ArgValue::Text("x".into())], vec![("nope".into(), ArgValue::Int(1))]),
            (vec![ArgValue::Text("x".into())], vec![("name".into(), ArgValue::Text("y".into()))]),
            (
                vec![ArgValue::Text("x".into()), ArgValue::Int(1), ArgValue::Int(1), ArgValue::Int(1)],
                vec![],
            ),
        ];
        for (pos, named) in cases {
            let e = bind("p", PARAMS, pos, named).unwrap_err();
            assert_eq!(e.sqlstate(), "22023", "{e}");
        }
    }
}
