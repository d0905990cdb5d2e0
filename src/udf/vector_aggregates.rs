//! `avg(vector)` and `sum(vector)` (#14): pgvector's aggregates under the names users
//! write. DataFusion's `avg` and `sum` stay what they are for every other type: the
//! functions registered under those names here hand anything but a vector to them,
//! method by method (accumulators, groups accumulators, statistics, coercion).
//! Over vectors: the element-wise average (accumulated in double precision, as
//! pgvector's vector_accum/vector_avg) or sum (in real, 22003 on overflow); NULLs
//! skipped; no rows, NULL; different dimensions, 22000.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Float64Array, Int64Array, ListArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, GroupsAccumulator, Signature, Volatility};

use super::vector::{Vectors, is_marked_vector, vector_type, VECTOR_MARK};
use crate::error::Error;

fn df(e: Error) -> datafusion::error::DataFusionError {
    e.into_datafusion()
}

/// Is this argument a pgvector `vector` (not any float array)?
fn is_vector_field(f: &Field) -> bool {
    match f.data_type() {
        DataType::FixedSizeList(item, _) => item.data_type() == &DataType::Float32,
        _ => is_marked_vector(f),
    }
}

fn is_vector_type(t: &DataType) -> bool {
    matches!(t, DataType::FixedSizeList(item, _) if item.data_type() == &DataType::Float32)
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct VectorAware {
    inner: AggregateUDF,
    average: bool,
    signature: Signature,
}

impl VectorAware {
    fn vector_result(&self, arg: &Field) -> FieldRef {
        let name = self.inner.name();
        Arc::new(match arg.data_type() {
            DataType::FixedSizeList(_, d) if *d > 0 => Field::new(name, vector_type(*d as usize), true),
            _ => Field::new(name, DataType::List(Arc::new(Field::new("item", DataType::Float32, true))), true)
                .with_metadata([(VECTOR_MARK.to_string(), "vector".to_string())].into()),
        })
    }
}

impl AggregateUDFImpl for VectorAware {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if let [t] = arg_types {
            if is_vector_type(t) || matches!(t, DataType::List(item) if item.data_type() == &DataType::Float32) {
                return Ok(arg_types.to_vec());
            }
        }
        let fields: Vec<FieldRef> = arg_types.iter().map(|t| Arc::new(Field::new("", t.clone(), true))).collect();
        Ok(datafusion::logical_expr::type_coercion::functions::fields_with_udf(&fields, &self.inner)?
            .into_iter()
            .map(|f| f.data_type().clone())
            .collect())
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [t] if is_vector_type(t) => Ok(self.vector_result(&Field::new("", t.clone(), true)).data_type().clone()),
            _ => self.inner.return_type(arg_types),
        }
    }

    fn return_field(&self, arg_fields: &[FieldRef]) -> Result<FieldRef> {
        match arg_fields {
            [f] if is_vector_field(f) => Ok(self.vector_result(f)),
            _ => self.inner.return_field(arg_fields),
        }
    }

    fn is_nullable(&self) -> bool {
        self.inner.is_nullable()
    }

    fn accumulator(&self, acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        match acc_args.expr_fields {
            [f] if is_vector_field(f) => Ok(Box::new(VectorAccumulator {
                average: self.average,
                count: 0,
                sums: None,
                result: acc_args.return_field.data_type().clone(),
            })),
            _ => self.inner.accumulator(acc_args),
        }
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        match args.input_fields {
            [f] if is_vector_field(f) => Ok(vec![
                Arc::new(Field::new(format!("{}[count]", args.name), DataType::Int64, true)),
                Arc::new(Field::new(format!("{}[sums]", args.name), DataType::List(Arc::new(Field::new("item", DataType::Float64, true))), true)),
            ]),
            _ => self.inner.inner().state_fields(args),
        }
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        match args.expr_fields {
            [f] if is_vector_field(f) => false,
            _ => self.inner.groups_accumulator_supported(args),
        }
    }

    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        self.inner.create_groups_accumulator(args)
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        match args.expr_fields {
            [f] if is_vector_field(f) => self.accumulator(args),
            _ => self.inner.create_sliding_accumulator(args),
        }
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        self.inner.inner().order_sensitivity()
    }

    fn reverse_expr(&self) -> datafusion::logical_expr::ReversedUDAF {
        self.inner.reverse_udf()
    }

    fn simplify(&self) -> Option<datafusion::logical_expr::function::AggregateFunctionSimplification> {
        self.inner.simplify()
    }

    fn value_from_stats(&self, statistics_args: &datafusion::logical_expr::StatisticsArgs) -> Option<ScalarValue> {
        self.inner.value_from_stats(statistics_args)
    }

    fn default_value(&self, data_type: &DataType) -> Result<ScalarValue> {
        if is_vector_type(data_type) {
            return ScalarValue::try_from(data_type);
        }
        self.inner.default_value(data_type)
    }

    fn set_monotonicity(&self, data_type: &DataType) -> datafusion::logical_expr::SetMonotonicity {
        self.inner.inner().set_monotonicity(data_type)
    }

    fn simplify_expr_op_literal(
        &self,
        agg_function: &datafusion::logical_expr::expr::AggregateFunction,
        arg: &datafusion::logical_expr::Expr,
        op: datafusion::logical_expr::Operator,
        lit: &datafusion::logical_expr::Expr,
        arg_is_left: bool,
    ) -> Result<Option<datafusion::logical_expr::Expr>> {
        self.inner.simplify_expr_op_literal(agg_function, arg, op, lit, arg_is_left)
    }

    fn documentation(&self) -> Option<&datafusion::logical_expr::Documentation> {
        self.inner.documentation()
    }
}

#[derive(Debug)]
struct VectorAccumulator {
    average: bool,
    count: i64,
    sums: Option<Vec<f64>>,
    result: DataType,
}

impl VectorAccumulator {
    fn add(&mut self, v: &[f64], n: i64) -> std::result::Result<(), Error> {
        match &mut self.sums {
            None => self.sums = Some(v.to_vec()),
            Some(s) => {
                if s.len() != v.len() {
                    return Err(Error::DataException(if self.average {
                        format!("expected {} dimensions, not {}", s.len(), v.len())
                    } else {
                        format!("different vector dimensions {} and {}", s.len(), v.len())
                    }));
                }
                for (a, b) in s.iter_mut().zip(v) {
                    *a += b;
                    // sum adds in real, as pgvector's vector_add does.
                    if !self.average && (*a as f32).is_infinite() {
                        return Err(Error::NumericOutOfRange("value out of range: overflow".into()));
                    }
                }
            }
        }
        self.count += n;
        Ok(())
    }
}

impl Accumulator for VectorAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let rows = Vectors::from_array(&values[0]).map_err(df)?;
        for i in 0..rows.len() {
            if let Some(v) = rows.get(i) {
                let v: Vec<f64> = v.iter().map(|x| *x as f64).collect();
                self.add(&v, 1).map_err(df)?;
            }
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let counts = states[0].as_any().downcast_ref::<Int64Array>().ok_or_else(|| df(Error::Internal("vector aggregate count state".into())))?;
        let sums = states[1].as_any().downcast_ref::<ListArray>().ok_or_else(|| df(Error::Internal("vector aggregate sums state".into())))?;
        for i in 0..counts.len() {
            if counts.is_null(i) || sums.is_null(i) || counts.value(i) == 0 {
                continue;
            }
            let v = sums.value(i);
            let v = v.as_any().downcast_ref::<Float64Array>().ok_or_else(|| df(Error::Internal("vector aggregate sums".into())))?;
            self.add(v.values(), counts.value(i)).map_err(df)?;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let sums = match &self.sums {
            Some(s) => ScalarValue::List(Arc::new(ListArray::from_iter_primitive::<Float64Type, _, _>(std::iter::once(Some(s.iter().map(|x| Some(*x)).collect::<Vec<_>>()))))),
            None => ScalarValue::try_from(&DataType::List(Arc::new(Field::new("item", DataType::Float64, true))))?,
        };
        Ok(vec![ScalarValue::Int64(Some(self.count)), sums])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let Some(s) = &self.sums else { return ScalarValue::try_from(&self.result) };
        let v: Vec<f32> = s.iter().map(|x| if self.average { (x / self.count as f64) as f32 } else { *x as f32 }).collect();
        if v.iter().any(|x| x.is_infinite()) {
            return Err(df(Error::NumericOutOfRange("value out of range: overflow".into())));
        }
        let fixed = super::vector::vector_scalar(&v);
        if fixed.data_type() == self.result {
            return Ok(fixed);
        }
        fixed.cast_to(&self.result)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.sums.as_ref().map(|s| s.len() * 8).unwrap_or(0)
    }
}

/// `avg` and `sum`, each DataFusion's for every type but `vector`.
pub fn functions() -> Vec<AggregateUDF> {
    [(datafusion::functions_aggregate::average::avg_udaf(), true), (datafusion::functions_aggregate::sum::sum_udaf(), false)]
        .into_iter()
        .map(|(inner, average)| {
            AggregateUDF::new_from_impl(VectorAware { inner: inner.as_ref().clone(), average, signature: Signature::user_defined(Volatility::Immutable) })
        })
        .collect()
}
