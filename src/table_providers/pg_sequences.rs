//! `pg_catalog.pg_sequences` (#14): one row per sequence, from the catalog, with the
//! position the allocator has reached (`last_value` NULL until a value was drawn or
//! set, as PostgreSQL shows it).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, Int64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use super::system::{LiveTable, strings};
use crate::catalog::Catalog;
use crate::catalog::sequences::Sequences;

pub const NAME: &str = "pg_sequences";

pub fn table(catalog: &Arc<Catalog>, sequences: &Arc<Sequences>) -> LiveTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("schemaname", DataType::Utf8, true),
        Field::new("sequencename", DataType::Utf8, true),
        Field::new("sequenceowner", DataType::Utf8, true),
        Field::new("data_type", DataType::Utf8, true),
        Field::new("start_value", DataType::Int64, true),
        Field::new("min_value", DataType::Int64, true),
        Field::new("max_value", DataType::Int64, true),
        Field::new("increment_by", DataType::Int64, true),
        Field::new("cycle", DataType::Boolean, true),
        Field::new("cache_size", DataType::Int64, true),
        Field::new("last_value", DataType::Int64, true),
    ]));
    let (catalog, sequences) = (catalog.clone(), sequences.clone());
    LiveTable::new(schema, move || {
        let state = catalog.snapshot();
        let all: Vec<_> = state.sequences.values().collect();
        let ints = |f: &dyn Fn(&crate::catalog::sequences::SequenceRecord) -> Option<i64>| -> ArrayRef {
            Arc::new(Int64Array::from(all.iter().map(|r| f(r)).collect::<Vec<_>>()))
        };
        Ok(vec![
            strings(all.iter().map(|_| Some(crate::engine::DATA_SCHEMA.to_string()))),
            strings(all.iter().map(|r| Some(r.name.clone()))),
            strings(all.iter().map(|r| Some(r.owner.clone().unwrap_or_else(|| "postgres".into())))),
            strings(all.iter().map(|r| Some(r.data_type.clone()))),
            ints(&|r| Some(r.start)),
            ints(&|r| Some(r.min)),
            ints(&|r| Some(r.max)),
            ints(&|r| Some(r.increment)),
            Arc::new(BooleanArray::from(all.iter().map(|r| r.cycle).collect::<Vec<_>>())),
            ints(&|r| Some(r.cache)),
            ints(&|r| {
                let (last, called) = sequences.position(r);
                called.then_some(last)
            }),
        ])
    })
}
