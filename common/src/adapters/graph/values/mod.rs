//! Arrow columns as graph property values, read cell by cell straight from the
//! Arrow arrays: no row objects, no JSON in between. Each adapter turns a
//! [`Value`] into its own wire form (Cypher literal text for FalkorDB, Bolt
//! values for Neo4j).
//!
//! The four common types (integers, floats, booleans, strings) stay Arrow
//! arrays. Arrays (`type[]`, Arrow list columns), the temporal types and
//! points become [`Cell`]s, converted once per batch and checked on the way:
//! a malformed value is an error naming the row and the value.

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, StringArray};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, DurationMicrosecondType, DurationMillisecondType,
    DurationNanosecondType, DurationSecondType, Float64Type, Int64Type, IntervalMonthDayNanoType,
    IntervalUnit, Time32MillisecondType, Time32SecondType, Time64MicrosecondType,
    Time64NanosecondType, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use chrono_tz::Tz;

mod cells;

use super::temporal;
use crate::adapters::snapshot::PropType;
use cells::*;
pub use cells::{parse_bool, parse_cell};

/// One cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// No value.
    Null,
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A string.
    Str(&'a str),
    /// An array, temporal value or point.
    Cell(&'a Cell),
}

/// A duration as Neo4j keeps it: months, days and seconds apart (a month
/// has no fixed number of days, nor a day of seconds), plus nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration {
    /// Whole months.
    pub months: i64,
    /// Whole days.
    pub days: i64,
    /// Whole seconds.
    pub seconds: i64,
    /// 0 to 999 999 999, as Neo4j keeps it (-1.5 s is -2 s + 500 000 000 ns).
    pub nanos: i64,
}

impl Duration {
    /// Carries whole seconds out of `nanos`, leaving it in 0..1e9.
    pub fn normalized(months: i64, days: i64, seconds: i64, nanos: i64) -> Duration {
        Duration {
            months,
            days,
            seconds: seconds + nanos.div_euclid(1_000_000_000),
            nanos: nanos.rem_euclid(1_000_000_000),
        }
    }
}

/// A point; `srid` as Neo4j: 4326 WGS-84 (x = longitude, y = latitude),
/// 4979 WGS-84-3D (z = height), 7203 cartesian, 9157 cartesian-3D.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// The coordinate reference system (see above).
    pub srid: u32,
    /// x, or longitude.
    pub x: f64,
    /// y, or latitude.
    pub y: f64,
    /// z, or height, in 3D.
    pub z: Option<f64>,
}

/// An owned value of the kinds that are not plain Arrow arrays.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A string.
    Str(String),
    /// A date (`date`).
    Date(NaiveDate),
    /// A time of day without a zone (`localtime`).
    LocalTime(NaiveTime),
    /// A time of day with a UTC offset (`time`).
    Time(NaiveTime, FixedOffset),
    /// A date and time without a zone (`localdatetime`).
    LocalDateTime(NaiveDateTime),
    /// A date and time with a UTC offset (`datetime` with `+01:00` or `Z`).
    DateTime(DateTime<FixedOffset>),
    /// A local date and time in a named time zone (`datetime` with `[Europe/Berlin]`).
    ZonedDateTime(NaiveDateTime, Tz),
    /// A duration.
    Duration(Duration),
    /// A point.
    Point(Point),
    /// An array: never holds nulls (no store keeps them in a property).
    List(Vec<Cell>),
}

/// What a column of cells holds: the element type, and whether each cell is
/// an array of it. Adapters that build values with functions (FalkorDB's
/// `date(…)`) read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CellKind {
    /// The element type.
    pub ty: PropType,
    /// Each cell is an array of it.
    pub array: bool,
}

/// A column normalised to one of the four stored types, or to cells.
#[derive(Debug, Clone)]
pub enum Values {
    /// Integers.
    Int(Int64Array),
    /// Floats.
    Float(Float64Array),
    /// Booleans.
    Bool(BooleanArray),
    /// Strings.
    Str(StringArray),
    /// A column of nulls (Arrow's Null type).
    Null,
    /// Arrays, temporal values or points, converted once.
    Cells {
        /// What each cell holds.
        kind: CellKind,
        /// One per row; `None` for a null.
        cells: Vec<Option<Cell>>,
    },
}

/// How a property column is declared in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Declared {
    /// The declared type (`None`: string).
    pub ty: Option<PropType>,
    /// `type[]`.
    pub array: bool,
    /// Splits a CSV (string) array value: neo4j-admin's `--array-delimiter`.
    pub array_delimiter: char,
    /// The number, in its file, of the column's first row (0 for the
    /// first data row): messages name rows of the file, not of the batch.
    pub first_row: usize,
}

impl Values {
    /// Normalises `array` (any integer width → Int64, float → Float64, any string
    /// layout → Utf8), casting to `declared` when the header declares a type.
    /// A value that does not fit the declared type is an error, never a silent null.
    pub fn from_array(array: &ArrayRef, declared: Option<PropType>) -> Result<Values, String> {
        Values::from_column(
            array,
            Declared {
                ty: declared,
                array: false,
                array_delimiter: ';',
                first_row: 0,
            },
        )
    }

    /// [`Values::from_array`] for any declared column: arrays (`type[]` split
    /// at the array delimiter, or Arrow list columns), temporal types and
    /// points become cells.
    pub fn from_column(array: &ArrayRef, declared: Declared) -> Result<Values, String> {
        let list_child = matches!(
            array.data_type(),
            DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(_, _)
        );
        if declared.array || list_child {
            return Values::arrays(array, declared);
        }
        let first = declared.first_row;
        let row_of = move |i: usize| first + i;
        let cells = match declared.ty {
            Some(t) if is_cell_type(t) => true,
            None => native_kind(array.data_type()).is_some_and(is_cell_type),
            _ => false,
        };
        if cells {
            let (ty, cells) = element_cells(array, declared.ty, &row_of)?;
            return Ok(Values::Cells {
                kind: CellKind { ty, array: false },
                cells,
            });
        }
        if declared.ty == Some(PropType::Bool) && is_string(array.data_type()) {
            // The same rule as CSV: `true`/`false` only (Arrow's own cast
            // would take `yes`, `1`, `on`, …).
            let strings = cast_strict(array, &DataType::Utf8)?;
            let strings = strings.as_string::<i32>();
            let bools = strings
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.map(|s| parse_bool(s.trim()).map_err(|e| bad_value(row_of(i), e)))
                        .transpose()
                })
                .collect::<Result<BooleanArray, String>>()?;
            return Ok(Values::Bool(bools));
        }
        if let Some(ty) = declared.ty.filter(|t| t.int_range().is_some()) {
            // A cast into an integer would truncate a fraction: refused.
            if has_fraction_type(array.data_type()) {
                if let Some(i) = first_fraction(array) {
                    return Err(bad_value(
                        row_of(i),
                        format!(
                            "value {} has a fraction; a `{}` column takes whole numbers only",
                            cell_text(array, i),
                            ty.name()
                        ),
                    ));
                }
            }
        }
        if let Some(t) = declared.ty {
            // Arrow's casts between booleans and numbers are lossy guesses
            // (any non-zero number is `true`, `true` is 1): refused, as in CSV.
            let source = array.data_type();
            let boolean = matches!(source, DataType::Boolean);
            let numeric_type = t.int_range().is_some() || t == PropType::Float;
            let refused = (t == PropType::Bool && !boolean && !matches!(source, DataType::Null))
                || (numeric_type && boolean);
            if refused {
                return Err(format!(
                    "Arrow type {source} cannot be read as {}: declare the column's own type",
                    t.name()
                ));
            }
        }
        let target = match declared.ty {
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
                other => return Err(format!("Arrow type {other} is not supported: use integers, floats, booleans, strings, dates, times, timestamps, durations or lists of them")),
            },
        };
        let cast = match cast_strict(array, &target) {
            Ok(c) => c,
            Err(m) => {
                // Name the first cell that does not convert.
                let Some(ty) = declared.ty else { return Err(m) };
                let bad =
                    (0..array.len()).find(|&i| cast_strict(&array.slice(i, 1), &target).is_err());
                return Err(match bad {
                    Some(i) => bad_value(
                        row_of(i),
                        format!(
                            "value {} does not convert to {}: {m}",
                            cell_text(array, i),
                            ty.name()
                        ),
                    ),
                    None => m,
                });
            }
        };
        if let Some(ty) = declared.ty {
            if let DataType::Int64 = target {
                let ints = cast.as_primitive::<Int64Type>();
                for i in 0..ints.len() {
                    if ints.is_valid(i) {
                        check_range(ty, ints.value(i)).map_err(|e| bad_value(row_of(i), e))?;
                    }
                }
            }
        }
        Ok(match target {
            DataType::Int64 => Values::Int(cast.as_primitive::<Int64Type>().clone()),
            DataType::Float64 => Values::Float(cast.as_primitive::<Float64Type>().clone()),
            DataType::Boolean => Values::Bool(cast.as_boolean().clone()),
            _ => Values::Str(cast.as_string::<i32>().clone()),
        })
    }

    fn arrays(array: &ArrayRef, declared: Declared) -> Result<Values, String> {
        let first = declared.first_row;
        let mut out: Vec<Option<Cell>> = Vec::with_capacity(array.len());
        let elem_ty;
        if is_string(array.data_type()) {
            let ty = declared
                .ty
                .ok_or("an array column needs a declared element type (e.g. `tags:string[]`)")?;
            elem_ty = ty;
            let strings = cast_strict(array, &DataType::Utf8)?;
            let strings = strings.as_string::<i32>();
            for row in 0..strings.len() {
                if strings.is_null(row) {
                    out.push(None);
                    continue;
                }
                let mut items = Vec::new();
                for item in strings.value(row).split(declared.array_delimiter) {
                    if item.is_empty() && ty != PropType::String {
                        return Err(bad_value(
                            first + row,
                            format!(
                                "`{}` has an empty element (array delimiter `{}`)",
                                strings.value(row),
                                declared.array_delimiter
                            ),
                        ));
                    }
                    items.push(parse_cell(ty, item).map_err(|e| {
                        bad_value(first + row, format!("array `{}`: {e}", strings.value(row)))
                    })?);
                }
                out.push(Some(Cell::List(items)));
            }
        } else {
            let (offsets, child): (Vec<(usize, usize)>, ArrayRef) = match array.data_type() {
                DataType::List(_) => {
                    let l = array.as_list::<i32>();
                    let o = l.value_offsets();
                    (
                        o.windows(2).map(|w| (w[0] as usize, w[1] as usize)).collect(),
                        l.values().clone(),
                    )
                }
                DataType::LargeList(_) => {
                    let l = array.as_list::<i64>();
                    let o = l.value_offsets();
                    (
                        o.windows(2).map(|w| (w[0] as usize, w[1] as usize)).collect(),
                        l.values().clone(),
                    )
                }
                DataType::FixedSizeList(_, n) => {
                    let l = array.as_fixed_size_list();
                    let n = usize::try_from(*n).unwrap_or(0);
                    (
                        (0..l.len()).map(|i| (i * n, (i + 1) * n)).collect(),
                        l.values().clone(),
                    )
                }
                other => {
                    return Err(format!(
                        "a `[]` column must hold strings (split at the array delimiter) or Arrow lists, not {other}"
                    ))
                }
            };
            if matches!(
                child.data_type(),
                DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(_, _)
            ) {
                return Err("lists of lists are not supported".into());
            }
            // A child element's row: the list whose offsets hold it.
            let row_of = |i: usize| first + offsets.partition_point(|(_, end)| *end <= i);
            let (ty, cells) = element_cells(&child, declared.ty, &row_of)?;
            elem_ty = ty;
            for (row, (start, end)) in offsets.into_iter().enumerate() {
                if array.is_null(row) {
                    out.push(None);
                    continue;
                }
                let mut items = Vec::with_capacity(end - start);
                for cell in &cells[start..end] {
                    match cell {
                        Some(c) => items.push(c.clone()),
                        None => {
                            return Err(bad_value(
                                first + row,
                                "the list holds a null, which no graph store keeps in a property",
                            ))
                        }
                    }
                }
                out.push(Some(Cell::List(items)));
            }
        }
        Ok(Values::Cells {
            kind: CellKind {
                ty: elem_ty,
                array: true,
            },
            cells: out,
        })
    }

    /// The value of `row`.
    pub fn get(&self, row: usize) -> Value<'_> {
        match self {
            Values::Int(a) if a.is_valid(row) => Value::Int(a.value(row)),
            Values::Float(a) if a.is_valid(row) => Value::Float(a.value(row)),
            Values::Bool(a) if a.is_valid(row) => Value::Bool(a.value(row)),
            Values::Str(a) if a.is_valid(row) => Value::Str(a.value(row)),
            Values::Cells { cells, .. } => match cells.get(row) {
                Some(Some(c)) => Value::Cell(c),
                _ => Value::Null,
            },
            _ => Value::Null,
        }
    }

    /// The kind of a column of cells.
    pub fn cell_kind(&self) -> Option<CellKind> {
        match self {
            Values::Cells { kind, .. } => Some(*kind),
            _ => None,
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

    fn declared(ty: PropType, array: bool) -> Declared {
        Declared {
            ty: Some(ty),
            array,
            array_delimiter: ';',
            first_row: 0,
        }
    }

    #[test]
    fn string_booleans_follow_the_csv_rule() {
        let a: ArrayRef = Arc::new(StringArray::from(vec![Some("TRUE"), Some("false"), None]));
        let v = Values::from_column(&a, declared(PropType::Bool, false)).unwrap();
        assert_eq!(
            (v.get(0), v.get(1), v.get(2)),
            (Value::Bool(true), Value::Bool(false), Value::Null)
        );
        for bad in ["yes", "no", "1", "t", "on"] {
            let a: ArrayRef = Arc::new(StringArray::from(vec!["true", bad]));
            let err = Values::from_column(&a, declared(PropType::Bool, false)).unwrap_err();
            assert!(err.contains("row 2") && err.contains(bad), "{err}");
        }
    }

    #[test]
    fn numbers_and_booleans_never_turn_into_each_other() {
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![0, 2]));
        let err = Values::from_column(&ints, declared(PropType::Bool, false)).unwrap_err();
        assert!(err.contains("cannot be read as boolean"), "{err}");
        let floats: ArrayRef = Arc::new(Float64Array::from(vec![0.5]));
        assert!(Values::from_column(&floats, declared(PropType::Bool, false)).is_err());
        let bools: ArrayRef = Arc::new(BooleanArray::from(vec![true, false]));
        for ty in [PropType::Int, PropType::Float] {
            let err = Values::from_column(&bools, declared(ty, false)).unwrap_err();
            assert!(err.contains("cannot be read as"), "{err}");
        }
        let v = Values::from_column(&bools, declared(PropType::Bool, false)).unwrap();
        assert_eq!(v.get(0), Value::Bool(true));
    }

    #[test]
    fn messages_name_the_row_of_the_file_not_of_the_batch() {
        let a: ArrayRef = Arc::new(StringArray::from(vec!["2020-01-01", "2020-13-01"]));
        let at = |first_row| Declared {
            first_row,
            ..declared(PropType::Date, false)
        };
        let err = Values::from_column(&a, at(10_000)).unwrap_err();
        assert!(err.starts_with("row 10002: `2020-13-01`"), "{err}");
        use arrow::array::ListArray;
        use arrow::datatypes::Int64Type as I;
        let list: ArrayRef = Arc::new(ListArray::from_iter_primitive::<I, _, _>(vec![
            Some(vec![Some(1), Some(2)]),
            Some(vec![Some(3), None]),
        ]));
        let untyped = Declared {
            ty: None,
            first_row: 5,
            ..declared(PropType::Int, false)
        };
        let err = Values::from_column(&list, untyped).unwrap_err();
        assert!(err.starts_with("row 7:"), "{err}");
    }

    #[test]
    fn csv_arrays_split_at_the_array_delimiter() {
        let a: ArrayRef = Arc::new(StringArray::from(vec![Some("1;2;3"), None, Some("7")]));
        let v = Values::from_column(&a, declared(PropType::Int, true)).unwrap();
        assert_eq!(
            v.get(0),
            Value::Cell(&Cell::List(vec![Cell::Int(1), Cell::Int(2), Cell::Int(3)]))
        );
        assert_eq!(v.get(1), Value::Null);
        assert_eq!(v.get(2), Value::Cell(&Cell::List(vec![Cell::Int(7)])));
        let pipe = Declared {
            array_delimiter: '|',
            ..declared(PropType::String, true)
        };
        let a: ArrayRef = Arc::new(StringArray::from(vec!["a;b|c"]));
        let v = Values::from_column(&a, pipe).unwrap();
        assert_eq!(
            v.get(0),
            Value::Cell(&Cell::List(vec![
                Cell::Str("a;b".into()),
                Cell::Str("c".into())
            ]))
        );
        let a: ArrayRef = Arc::new(StringArray::from(vec!["1;x"]));
        let err = Values::from_column(&a, declared(PropType::Int, true)).unwrap_err();
        assert!(err.contains("`x` is not an integer"), "{err}");
        let a: ArrayRef = Arc::new(StringArray::from(vec!["1;;2"]));
        let err = Values::from_column(&a, declared(PropType::Int, true)).unwrap_err();
        assert!(err.contains("empty element"), "{err}");
    }

    #[test]
    fn arrow_lists_and_temporal_columns_become_cells() {
        use arrow::array::{Date32Array, ListArray, TimestampMillisecondArray};
        use arrow::datatypes::Int64Type as I;
        let list: ArrayRef = Arc::new(ListArray::from_iter_primitive::<I, _, _>(vec![
            Some(vec![Some(1), Some(2)]),
            None,
        ]));
        let v = Values::from_column(
            &list,
            Declared {
                ty: None,
                array: false,
                array_delimiter: ';',
                first_row: 0,
            },
        )
        .unwrap();
        assert_eq!(
            v.get(0),
            Value::Cell(&Cell::List(vec![Cell::Int(1), Cell::Int(2)]))
        );
        assert_eq!(v.get(1), Value::Null);
        let with_null: ArrayRef =
            Arc::new(ListArray::from_iter_primitive::<I, _, _>(vec![Some(vec![
                Some(1),
                None,
            ])]));
        assert!(Values::from_array(&with_null, None)
            .unwrap_err()
            .contains("null"));

        let dates: ArrayRef = Arc::new(Date32Array::from(vec![18276]));
        let v = Values::from_array(&dates, None).unwrap();
        assert_eq!(
            v.get(0),
            Value::Cell(&Cell::Date(NaiveDate::from_ymd_opt(2020, 1, 15).unwrap()))
        );
        let berlin: ArrayRef = Arc::new(
            TimestampMillisecondArray::from(vec![1_579_091_696_000]).with_timezone("Europe/Berlin"),
        );
        let v = Values::from_array(&berlin, Some(PropType::DateTime)).unwrap();
        let local = NaiveDate::from_ymd_opt(2020, 1, 15)
            .unwrap()
            .and_hms_opt(13, 34, 56)
            .unwrap();
        assert_eq!(
            v.get(0),
            Value::Cell(&Cell::ZonedDateTime(local, chrono_tz::Europe::Berlin))
        );
        // A timestamp is not a date: no silent truncation.
        assert!(Values::from_array(&berlin, Some(PropType::Date))
            .unwrap_err()
            .contains("cannot be read as date"));
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
                Some("row 12: `yes` is not a boolean"),
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
            let at_row_10 = Declared {
                first_row: 10,
                ..declared(ty, false)
            };
            let got = Values::from_column(&array, at_row_10);
            match want {
                None => assert!(got.is_ok(), "{array:?} as {ty:?}: {got:?}"),
                Some(w) => {
                    let e = got.expect_err(w);
                    assert!(e.contains(w), "{array:?} as {ty:?}: {e}");
                }
            }
        }
    }

    #[test]
    fn strict_casts_cover_integer_arrays() {
        use arrow::array::ListArray;
        use arrow::datatypes::Int64Type as I;
        let strs = |v: Vec<&str>| -> ArrayRef { Arc::new(StringArray::from(v)) };
        let at = |ty, first_row| Declared {
            first_row,
            ..declared(ty, true)
        };
        let err =
            Values::from_column(&strs(vec!["1;2", "3;4.5"]), at(PropType::Int32, 4)).unwrap_err();
        assert!(
            err.starts_with("row 6: array `3;4.5`: `4.5` is not an integer")
                && err.contains("whole numbers only"),
            "{err}"
        );
        let err = Values::from_column(&strs(vec!["127;128"]), at(PropType::Byte, 0)).unwrap_err();
        assert!(
            err.contains("value 128 is out of range for `byte`"),
            "{err}"
        );
        assert!(Values::from_column(&strs(vec!["-128;127"]), at(PropType::Byte, 0)).is_ok());
        // Arrow lists: every element range-checked, at the row of its list.
        let list: ArrayRef = Arc::new(ListArray::from_iter_primitive::<I, _, _>(vec![
            Some(vec![Some(1), Some(2)]),
            Some(vec![Some(40_000)]),
        ]));
        let err = Values::from_column(&list, at(PropType::Short, 0)).unwrap_err();
        assert!(
            err.starts_with("row 2: value 40000 is out of range for `short`"),
            "{err}"
        );
        let v = Values::from_column(&list, at(PropType::Int, 0)).unwrap();
        assert_eq!(v.get(1), Value::Cell(&Cell::List(vec![Cell::Int(40_000)])));
        // Floats in a list declared an integer type are refused, not truncated.
        use arrow::datatypes::Float64Type as F;
        let floats: ArrayRef =
            Arc::new(ListArray::from_iter_primitive::<F, _, _>(vec![Some(vec![
                Some(2.5),
            ])]));
        assert!(Values::from_column(&floats, at(PropType::Int32, 0)).is_err());
    }
}
