//! Eval sets: query vectors for an index and their exact nearest neighbours (ground
//! truth by brute force), the yardstick every tuning trial's recall is measured with.
//!
//! The record is in the catalog; the queries and ground truth are one Arrow IPC file
//! in the index's bucket, `<bucket>/tuning/<index>/eval-<name>-<id>.arrow`, written
//! (and fsynced) before the record points at it.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, ListArray, RecordBatch};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Float32Type, Int64Type, Schema};
use serde::{Deserialize, Serialize};

use super::Catalog;
use super::indexes::unknown_index;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EvalSetRecord {
    pub name: String,
    pub index: String,
    pub k: usize,
    pub queries: usize,
    pub seed: u64,
    /// `held-out rows` or `table <name>`.
    pub source: String,
    /// Rows of the index the ground truth was computed over.
    pub rows: usize,
    /// URL of the queries + ground truth file.
    pub location: String,
    pub created_at: String,
}

pub fn unknown_eval_set(name: &str) -> Error {
    Error::UndefinedObject(format!("eval set \"{name}\" does not exist; see SELECT name, index_name FROM lakehouse.eval_sets"))
}

/// Queries with their exact answers, in memory.
#[derive(Debug, Clone)]
pub struct EvalData {
    pub queries: Vec<Vec<f32>>,
    /// The table row a held-out query was taken from (left out of its answers).
    pub self_ids: Vec<Option<usize>>,
    /// Row ids of the k nearest, closest first.
    pub truth: Vec<Vec<usize>>,
    /// Distance of the k-th nearest (a found row at most this far counts as a hit,
    /// so ties at the boundary do not cost recall).
    pub kth: Vec<f64>,
}

impl EvalData {
    pub fn write(&self, path: &std::path::Path, dims: usize) -> Result<()> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("query", crate::udf::vector::vector_type(dims), false),
            Field::new("self_id", DataType::Int64, true),
            Field::new("truth", DataType::List(Arc::new(Field::new("item", DataType::Int64, false))), false),
            Field::new("kth", DataType::Float64, false),
        ]));
        let queries: Vec<Option<&[f32]>> = self.queries.iter().map(|q| Some(q.as_slice())).collect();
        let flat: Vec<i64> = self.truth.iter().flatten().map(|i| *i as i64).collect();
        let truth = ListArray::new(
            Arc::new(Field::new("item", DataType::Int64, false)),
            OffsetBuffer::from_lengths(self.truth.iter().map(|t| t.len())),
            Arc::new(Int64Array::from(flat)),
            None,
        );
        let columns: Vec<ArrayRef> = vec![
            crate::udf::vector::fixed_list(&queries, dims),
            Arc::new(Int64Array::from(self.self_ids.iter().map(|s| s.map(|i| i as i64)).collect::<Vec<_>>())),
            Arc::new(truth),
            Arc::new(Float64Array::from(self.kth.clone())),
        ];
        let batch = RecordBatch::try_new(schema.clone(), columns)?;
        let file = std::fs::File::create(path).map_err(|e| Error::io(path.display(), e))?;
        let mut w = datafusion::arrow::ipc::writer::FileWriter::try_new(std::io::BufWriter::new(file), &schema)?;
        w.write(&batch)?;
        w.finish()?;
        let file = w.into_inner()?.into_inner().map_err(|e| Error::io(path.display(), e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(path.display(), e))?;
        if let Some(dir) = path.parent().and_then(|d| std::fs::File::open(d).ok()) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    pub fn read(path: &std::path::Path) -> Result<EvalData> {
        let bad = |e: &dyn std::fmt::Display| Error::DataException(format!("eval set file {}: {e}", path.display()));
        let file = std::fs::File::open(path).map_err(|e| Error::io(path.display(), e))?;
        let reader = datafusion::arrow::ipc::reader::FileReader::try_new(std::io::BufReader::new(file), None).map_err(|e| bad(&e))?;
        let mut out = EvalData { queries: vec![], self_ids: vec![], truth: vec![], kth: vec![] };
        for batch in reader {
            let batch = batch.map_err(|e| bad(&e))?;
            if batch.num_columns() != 4 {
                return Err(bad(&"unexpected columns"));
            }
            let q = batch.column(0).as_fixed_size_list();
            let s = batch.column(1).as_primitive::<Int64Type>();
            let t = batch.column(2).as_list::<i32>();
            let kth = batch.column(3).as_primitive::<datafusion::arrow::datatypes::Float64Type>();
            for i in 0..batch.num_rows() {
                out.queries.push(q.value(i).as_primitive::<Float32Type>().values().to_vec());
                out.self_ids.push(if s.is_null(i) { None } else { Some(s.value(i) as usize) });
                out.truth.push(t.value(i).as_primitive::<Int64Type>().values().iter().map(|v| *v as usize).collect());
                out.kth.push(kth.value(i));
            }
        }
        Ok(out)
    }
}

impl Catalog {
    pub fn eval_set(&self, name: &str) -> Option<EvalSetRecord> {
        self.snapshot().eval_sets.get(name).cloned()
    }

    /// The index's eval sets, newest first.
    pub fn eval_sets_of(&self, index: &str) -> Vec<EvalSetRecord> {
        let mut v: Vec<EvalSetRecord> = self.snapshot().eval_sets.values().filter(|e| e.index == index).cloned().collect();
        v.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.name.cmp(&b.name)));
        v
    }

    /// Add (or, with `replace`, overwrite) an eval set. Returns the replaced record.
    pub fn put_eval_set(&self, record: EvalSetRecord, replace: bool) -> Result<Option<EvalSetRecord>> {
        self.update(|s| {
            if !s.indexes.contains_key(&record.index) {
                return Err(unknown_index(&record.index));
            }
            if !replace && s.eval_sets.contains_key(&record.name) {
                return Err(Error::DuplicateObject(format!("eval set \"{}\" (replace => true recomputes it)", record.name)));
            }
            Ok(s.eval_sets.insert(record.name.clone(), record))
        })
    }

    /// The index is gone: so are its eval sets and promotions (their files go with
    /// the index's tuning directory).
    pub fn remove_tuning_of(&self, index: &str) -> Result<()> {
        self.update(|s| {
            s.eval_sets.retain(|_, e| e.index != index);
            s.promotions.remove(index);
            Ok(())
        })
    }
}
