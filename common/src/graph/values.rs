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
            Some(t) if t.int_range().is_some() => DataType::Int64,
            Some(PropType::Float) => DataType::Float64,
            Some(PropType::Bool) => DataType::Boolean,
            Some(_) => DataType::Utf8,
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

    /// [`Values::from_array`] with neo4j-admin's strict rules, every refusal
    /// naming the row (`first` is the data row of the array's first cell,
    /// from 0; rows are counted from 1) and the value: a fraction (float or
    /// decimal) into an integer type, an integer outside `int`/`short`/`byte`
    /// range, a boolean spelled other than `true`/`false` (any case), a value
    /// that does not convert.
    pub fn from_array_strict(
        array: &ArrayRef,
        declared: Option<PropType>,
        first: u64,
    ) -> Result<Values, String> {
        let row = |i: usize| first + i as u64 + 1;
        let shown = |i: usize| cell_text(array, i);
        if let Some(ty) = declared {
            if ty.int_range().is_some() && has_fraction_type(array.data_type()) {
                if let Some(i) = first_fraction(array) {
                    return Err(format!(
                        "row {}: value {} has a fraction; a `{}` column takes whole numbers only",
                        row(i),
                        shown(i),
                        ty.name()
                    ));
                }
            }
            if ty == PropType::Bool && is_string_type(array.data_type()) {
                let text = cast_with_options(array, &DataType::Utf8, &CastOptions::default())
                    .map_err(|e| e.to_string())?;
                let text = text.as_string::<i32>();
                for i in 0..text.len() {
                    if text.is_valid(i)
                        && !text.value(i).eq_ignore_ascii_case("true")
                        && !text.value(i).eq_ignore_ascii_case("false")
                    {
                        return Err(format!(
                            "row {}: value {:?} is not a boolean: write true or false (any case)",
                            row(i),
                            text.value(i)
                        ));
                    }
                }
            }
        }
        let values = match Values::from_array(array, declared) {
            Ok(v) => v,
            Err(m) => {
                // Name the first cell that does not convert.
                let target = declared.map(|t| t.name()).unwrap_or("its type");
                for i in 0..array.len() {
                    if Values::from_array(&array.slice(i, 1), declared).is_err() {
                        return Err(format!(
                            "row {}: value {} does not convert to {target}: {m}",
                            row(i),
                            shown(i)
                        ));
                    }
                }
                return Err(m);
            }
        };
        if let (Some(ty), Values::Int(ints)) = (declared, &values) {
            if let Some((lo, hi)) = ty.int_range() {
                for i in 0..ints.len() {
                    let v = ints.value(i);
                    if ints.is_valid(i) && (v < lo || v > hi) {
                        return Err(format!(
                            "row {}: value {v} is out of range for `{}` ({lo} to {hi})",
                            row(i),
                            ty.name()
                        ));
                    }
                }
            }
        }
        Ok(values)
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

fn is_string_type(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => is_string_type(v),
        _ => false,
    }
}

/// Float and decimal types: a cast to an integer would truncate.
fn has_fraction_type(t: &DataType) -> bool {
    match t {
        DataType::Float16 | DataType::Float32 | DataType::Float64 => true,
        DataType::Decimal32(_, s) | DataType::Decimal64(_, s) => *s > 0,
        DataType::Decimal128(_, s) | DataType::Decimal256(_, s) => *s > 0,
        DataType::Dictionary(_, v) => has_fraction_type(v),
        _ => false,
    }
}

/// The first cell of a float or decimal array that is not a whole number
/// (or not finite).
fn first_fraction(array: &ArrayRef) -> Option<usize> {
    // A decimal's text has exactly `scale` digits after the point; a float
    // cast to Float64 is exact.
    if let Ok(f) = cast_with_options(array, &DataType::Float64, &CastOptions::default()) {
        if matches!(
            array.data_type(),
            DataType::Float16 | DataType::Float32 | DataType::Float64
        ) {
            let f = f.as_primitive::<Float64Type>();
            return (0..f.len()).find(|&i| {
                f.is_valid(i) && (f.value(i).fract() != 0.0 || !f.value(i).is_finite())
            });
        }
    }
    let text = cast_with_options(array, &DataType::Utf8, &CastOptions::default()).ok()?;
    let text = text.as_string::<i32>();
    (0..text.len()).find(|&i| {
        text.is_valid(i)
            && text
                .value(i)
                .split_once('.')
                .is_some_and(|(_, frac)| frac.chars().any(|c| c != '0'))
    })
}

/// One cell as text for a message.
fn cell_text(array: &ArrayRef, i: usize) -> String {
    arrow::util::display::ArrayFormatter::try_new(array.as_ref(), &Default::default())
        .map(|f| format!("`{}`", f.value(i)))
        .unwrap_or_else(|_| "(unprintable)".into())
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

    #[test]
    fn strict_casts_refuse_naming_row_and_value() {
        use arrow::array::{Decimal128Array, Float32Array};
        let strs = |v: Vec<Option<&str>>| -> ArrayRef { Arc::new(StringArray::from(v)) };
        let cases: Vec<(ArrayRef, PropType, Option<&str>)> = vec![
            // fractions into integer types: floats, decimals, text
            (
                Arc::new(Float64Array::from(vec![1.0, 1.5])),
                PropType::Int,
                Some("row 12: value `1.5` has a fraction"),
            ),
            (
                Arc::new(Float32Array::from(vec![-0.9])),
                PropType::Int32,
                Some("row 11: value `-0.9` has a fraction"),
            ),
            (
                Arc::new(Float64Array::from(vec![2.0, -3.0])),
                PropType::Int,
                None,
            ),
            (
                Arc::new(
                    Decimal128Array::from(vec![200, 270])
                        .with_precision_and_scale(5, 2)
                        .unwrap(),
                ),
                PropType::Int,
                Some("row 12: value `2.70` has a fraction"),
            ),
            (
                Arc::new(
                    Decimal128Array::from(vec![200, 300])
                        .with_precision_and_scale(5, 2)
                        .unwrap(),
                ),
                PropType::Int,
                None,
            ),
            (
                strs(vec![Some("7"), Some("1.5")]),
                PropType::Int,
                Some("row 12: value `1.5` does not convert to long"),
            ),
            // ranges
            (
                strs(vec![Some("127"), Some("128")]),
                PropType::Byte,
                Some("row 12: value 128 is out of range for `byte` (-128 to 127)"),
            ),
            (
                strs(vec![Some("-129")]),
                PropType::Byte,
                Some("out of range for `byte`"),
            ),
            (
                strs(vec![Some("32767"), Some("40000")]),
                PropType::Short,
                Some("row 12: value 40000 is out of range for `short`"),
            ),
            (
                strs(vec![Some("2147483647"), Some("3000000000")]),
                PropType::Int32,
                Some("row 12: value 3000000000 is out of range for `int`"),
            ),
            (strs(vec![Some("3000000000"), None]), PropType::Int, None),
            // booleans: true/false in any case, nothing else
            (
                strs(vec![Some("TRUE"), Some("false"), None]),
                PropType::Bool,
                None,
            ),
            (
                strs(vec![Some("true"), Some("yes")]),
                PropType::Bool,
                Some("row 12: value \"yes\" is not a boolean"),
            ),
            (
                strs(vec![Some("1")]),
                PropType::Bool,
                Some("is not a boolean"),
            ),
            (
                strs(vec![Some("t")]),
                PropType::Bool,
                Some("is not a boolean"),
            ),
        ];
        for (array, ty, want) in cases {
            let got = Values::from_array_strict(&array, Some(ty), 10);
            match want {
                None => assert!(got.is_ok(), "{array:?} as {ty:?}: {got:?}"),
                Some(w) => {
                    let e = got.expect_err(w);
                    assert!(e.contains(w), "{array:?} as {ty:?}: {e}");
                }
            }
        }
    }
}
