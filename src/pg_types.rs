//! The PostgreSQL type a column travels as, from its Arrow type and field metadata:
//! the wire encoding (server/encode.rs) and the catalog views (pg_attribute) agree
//! through this one mapping.

use datafusion::arrow::datatypes::DataType;
use pgwire::api::Type;

use crate::udf::vector::VECTOR_OID;

/// pgvector's `vector` as a wire type.
pub fn vector_pg_type() -> Type {
    Type::new("vector".into(), VECTOR_OID, tokio_postgres::types::Kind::Simple, "public".into())
}

/// Is `dt` the Arrow type of `vector(n)`?
pub fn is_vector(dt: &DataType) -> bool {
    matches!(dt, DataType::FixedSizeList(f, _) if f.data_type() == &DataType::Float32)
}

/// The PostgreSQL type a column of `dt` is sent as.
pub fn pg_type(dt: &DataType) -> Type {
    match dt {
        dt if is_vector(dt) => vector_pg_type(),
        DataType::Boolean => Type::BOOL,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => Type::INT2,
        DataType::Int32 | DataType::UInt16 => Type::INT4,
        DataType::Int64 | DataType::UInt32 => Type::INT8,
        DataType::UInt64 => Type::NUMERIC,
        DataType::Float16 | DataType::Float32 => Type::FLOAT4,
        DataType::Float64 => Type::FLOAT8,
        DataType::Decimal128(_, _) => Type::NUMERIC,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Type::TEXT,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => Type::BYTEA,
        DataType::Date32 | DataType::Date64 => Type::DATE,
        DataType::Timestamp(_, None) => Type::TIMESTAMP,
        DataType::Timestamp(_, Some(_)) => Type::TIMESTAMPTZ,
        DataType::Time32(_) | DataType::Time64(_) => Type::TIME,
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => match f.data_type() {
            DataType::Float32 | DataType::Float16 => Type::FLOAT4_ARRAY,
            DataType::Float64 => Type::FLOAT8_ARRAY,
            DataType::Int16 | DataType::Int8 | DataType::UInt8 => Type::INT2_ARRAY,
            DataType::Int32 | DataType::UInt16 => Type::INT4_ARRAY,
            DataType::Int64 | DataType::UInt32 => Type::INT8_ARRAY,
            DataType::Boolean => Type::BOOL_ARRAY,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Type::TEXT_ARRAY,
            DataType::Date32 | DataType::Date64 => Type::DATE_ARRAY,
            DataType::Timestamp(_, None) => Type::TIMESTAMP_ARRAY,
            DataType::Timestamp(_, Some(_)) => Type::TIMESTAMPTZ_ARRAY,
            DataType::Time32(_) | DataType::Time64(_) => Type::TIME_ARRAY,
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => Type::BYTEA_ARRAY,
            DataType::Decimal128(..) => Type::NUMERIC_ARRAY,
            _ => Type::TEXT,
        },
        _ => Type::TEXT,
    }
}

/// The wire type of a field: its data type's, or `vector` for a float list marked as
/// one (a `vector` of a dimension known only at run time).
pub fn field_pg_type(f: &datafusion::arrow::datatypes::Field) -> Type {
    if let Some(t) = enum_pg_type(f) {
        return t;
    }
    if let DataType::List(item) | DataType::LargeList(item) = f.data_type() {
        if let Some(t) = enum_pg_type(item) {
            let (oid, name, schema) = crate::udf::user_types::enum_of(item).unwrap_or_default();
            let array_oid = crate::table_providers::pg_relations::array_type_oid(schema, name) as u32;
            debug_assert_eq!(oid, t.oid());
            return Type::new(format!("_{name}"), array_oid, tokio_postgres::types::Kind::Array(t), schema.to_string());
        }
    }
    if crate::udf::vector::is_marked_vector(f) {
        vector_pg_type()
    } else if f.metadata().get(crate::udf::vector::VECTOR_MARK).is_some_and(|v| v == "char") && matches!(f.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) {
        Type::CHAR
    } else if crate::udf::json::is_json(f) && matches!(f.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) {
        if f.metadata().get(crate::udf::vector::VECTOR_MARK).is_some_and(|v| v == "jsonb") {
            Type::JSONB
        } else {
            Type::JSON
        }
    } else if let (Some(kind), DataType::List(_)) = (f.metadata().get(crate::udf::vector::VECTOR_MARK), f.data_type()) {
        match kind.as_str() {
            "int2vector" => Type::INT2_VECTOR,
            "oidvector" => Type::OID_VECTOR,
            _ => pg_type(f.data_type()),
        }
    } else if f.metadata().contains_key("pg.oid_alias") && matches!(f.data_type(), DataType::Int32 | DataType::UInt32) {
        // pg_catalog's oid columns (Int32 here) as PostgreSQL types them.
        Type::OID
    } else if f.metadata().contains_key("pg.oid_alias") && matches!(f.data_type(), DataType::List(i) if i.data_type() == &DataType::Int32) {
        // array_agg over one (engine/field_metadata.rs).
        Type::OID_ARRAY
    } else {
        pg_type(f.data_type())
    }
}


/// An enum's wire type (its own OID; values travel as their label's text).
pub fn enum_pg_type(f: &datafusion::arrow::datatypes::Field) -> Option<Type> {
    let (oid, name, schema) = crate::udf::user_types::enum_of(f)?;
    matches!(f.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
        .then(|| Type::new(name.to_string(), oid, tokio_postgres::types::Kind::Enum(vec![]), schema.to_string()))
}

/// `pg_attribute.attlen` of a type: its fixed size, or -1.
pub fn type_len(t: &Type) -> i16 {
    match t.oid() {
        16 | 18 => 1,
        21 => 2,
        23 | 26 | 700 | 1082 => 4,
        20 | 701 | 1083 | 1114 | 1184 => 8,
        2950 => 16,
        _ => -1,
    }
}
