//! Arrow columns as graph property values, read cell by cell straight from the
//! Arrow arrays: no row objects, no JSON in between. Each adapter turns a
//! [`Value`] into its own wire form (Cypher literal text for FalkorDB, Bolt
//! values for Neo4j).

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, StringArray};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{DataType, Float64Type, Int64Type};

use crate::snapshot::PropType;

/// One cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Null,
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(&'a str),
}

/// A column normalised to one of the four stored types.
#[derive(Debug, Clone)]
pub enum Values {
    Int(Int64Array),
    Float(Float64Array),
    Bool(BooleanArray),
    Str(StringArray),
    /// A column of nulls (Arrow's Null type).
    Null,
}

impl Values {
    /// Normalises `array` (any integer width → Int64, float → Float64, any string
    /// layout → Utf8), casting to `declared` when the header declares a type.
    /// A value that does not fit the declared type is an error, never a silent null.
    pub fn from_array(array: &ArrayRef, declared: Option<PropType>) -> Result<Values, String> {
        let target = match declared {
            Some(PropType::Int) => DataType::Int64,
            Some(PropType::Float) => DataType::Float64,
            Some(PropType::Bool) => DataType::Boolean,
            Some(PropType::String) => DataType::Utf8,
            None => match array.data_type() {
                DataType::Null => return Ok(Values::Null),
                t if t.is_integer() => DataType::Int64,
                t if t.is_floating() => DataType::Float64,
                DataType::Boolean => DataType::Boolean,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
                other => return Err(format!("Arrow type {other} is not supported: use integers, floats, booleans or strings")),
            },
        };
        let cast = if array.data_type() == &target {
            array.clone()
        } else {
            let safe = CastOptions {
                safe: false,
                ..CastOptions::default()
            };
            cast_with_options(array, &target, &safe)
                .map_err(|e| format!("cannot read as {target}: {e}"))?
        };
        Ok(match target {
            DataType::Int64 => Values::Int(cast.as_primitive::<Int64Type>().clone()),
            DataType::Float64 => Values::Float(cast.as_primitive::<Float64Type>().clone()),
            DataType::Boolean => Values::Bool(cast.as_boolean().clone()),
            _ => Values::Str(cast.as_string::<i32>().clone()),
        })
    }

    pub fn get(&self, row: usize) -> Value<'_> {
        match self {
            Values::Int(a) if a.is_valid(row) => Value::Int(a.value(row)),
            Values::Float(a) if a.is_valid(row) => Value::Float(a.value(row)),
            Values::Bool(a) if a.is_valid(row) => Value::Bool(a.value(row)),
            Values::Str(a) if a.is_valid(row) => Value::Str(a.value(row)),
            _ => Value::Null,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, LargeStringArray};
    use std::sync::Arc;

    #[test]
    fn integers_of_any_width_become_int64() {
        let a: ArrayRef = Arc::new(Int32Array::from(vec![Some(1), None]));
        let v = Values::from_array(&a, None).unwrap();
        assert_eq!((v.get(0), v.get(1)), (Value::Int(1), Value::Null));
    }

    #[test]
    fn declared_type_casts_strings_and_refuses_garbage() {
        let a: ArrayRef = Arc::new(LargeStringArray::from(vec!["42", "x"]));
        let err = Values::from_array(&a, Some(PropType::Int)).unwrap_err();
        assert!(err.contains("cannot read as Int64"), "{err}");
        let ok: ArrayRef = Arc::new(StringArray::from(vec!["42"]));
        assert_eq!(
            Values::from_array(&ok, Some(PropType::Int)).unwrap().get(0),
            Value::Int(42)
        );
    }
}
