//! Reading one Arrow array into cells: the strict casts of text columns, the
//! native Arrow types (temporal, list, fixed-size) cell by cell, and the
//! range checks on the way.

use super::*;

pub(super) fn is_cell_type(ty: PropType) -> bool {
    ty.int_range().is_none() && !matches!(ty, PropType::Float | PropType::Bool | PropType::String)
}

/// An integer of type `ty` outside its range (`int`, `short`, `byte`).
pub(super) fn check_range(ty: PropType, v: i64) -> Result<(), String> {
    match ty.int_range() {
        Some((lo, hi)) if v < lo || v > hi => Err(format!(
            "value {v} is out of range for `{}` ({lo} to {hi})",
            ty.name()
        )),
        _ => Ok(()),
    }
}

pub(super) fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// The type a native Arrow column holds, for the kinds that become cells.
pub(super) fn native_kind(t: &DataType) -> Option<PropType> {
    Some(match t {
        DataType::Date32 | DataType::Date64 => PropType::Date,
        DataType::Time32(_) | DataType::Time64(_) => PropType::LocalTime,
        DataType::Timestamp(_, None) => PropType::LocalDateTime,
        DataType::Timestamp(_, Some(_)) => PropType::DateTime,
        DataType::Duration(_) | DataType::Interval(IntervalUnit::MonthDayNano) => {
            PropType::Duration
        }
        t if t.is_integer() => PropType::Int,
        t if t.is_floating() => PropType::Float,
        DataType::Boolean => PropType::Bool,
        t if is_string(t) => PropType::String,
        _ => return None,
    })
}

/// neo4j-admin's boolean spelling, strictly: `true` or `false`, any case.
/// Anything else (`yes`, `1`, `t`) is refused, in CSV and in Parquet/Arrow
/// string columns alike.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    if s.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if s.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(format!(
            "`{s}` is not a boolean: use true or false (any case)"
        ))
    }
}

/// One text value as `ty`.
pub fn parse_cell(ty: PropType, s: &str) -> Result<Cell, String> {
    match ty {
        PropType::Int | PropType::Int32 | PropType::Short | PropType::Byte => {
            let v = s.trim().parse::<i64>().map_err(|e| {
                if s.trim().parse::<f64>().is_ok() {
                    format!(
                        "`{s}` is not an integer: a `{}` takes whole numbers only",
                        ty.name()
                    )
                } else {
                    format!("`{s}` is not an integer: {e}")
                }
            })?;
            check_range(ty, v)?;
            Ok(Cell::Int(v))
        }
        PropType::Float => {
            let f: f64 = s
                .trim()
                .parse()
                .map_err(|e| format!("`{s}` is not a number: {e}"))?;
            Ok(Cell::Float(f))
        }
        PropType::Bool => parse_bool(s.trim()).map(Cell::Bool),
        PropType::String => Ok(Cell::Str(s.to_owned())),
        PropType::Date => temporal::date(s),
        PropType::LocalTime => temporal::localtime(s),
        PropType::Time => temporal::time(s),
        PropType::LocalDateTime => temporal::localdatetime(s),
        PropType::DateTime => temporal::datetime(s),
        PropType::Duration => temporal::duration(s),
        PropType::Point => temporal::point(s),
    }
}

/// `row N: …`, N counted from 1 among the file's data rows.
pub(super) fn bad_value(row: usize, e: impl std::fmt::Display) -> String {
    format!("row {}: {e}", row + 1)
}

/// Maps an index into the array being converted to its row in the file.
pub(super) type RowOf<'a> = &'a dyn Fn(usize) -> usize;

pub(super) fn utc_naive(secs: i64, nanos: u32) -> Result<NaiveDateTime, String> {
    DateTime::from_timestamp(secs, nanos)
        .map(|d| d.naive_utc())
        .ok_or_else(|| format!("timestamp {secs}s is out of range"))
}

pub(super) fn split(v: i64, per_second: i64) -> (i64, u32) {
    let secs = v.div_euclid(per_second);
    let nanos = v.rem_euclid(per_second) * (1_000_000_000 / per_second);
    (secs, u32::try_from(nanos).unwrap_or(0))
}

/// An Arrow time zone string: a fixed offset (`+01:00`) or an IANA name.
pub(super) fn zone(tz: &str) -> Result<either::Zone, String> {
    if tz.starts_with(['+', '-']) {
        match temporal::time(&format!("00:00{tz}"))? {
            Cell::Time(_, offset) => Ok(either::Zone::Fixed(offset)),
            _ => Err(format!("`{tz}` is not a time zone")),
        }
    } else {
        tz.parse::<Tz>()
            .map(either::Zone::Named)
            .map_err(|_| format!("`{tz}` is not a known time zone name"))
    }
}

pub(super) mod either {
    #[derive(Clone, Copy)]
    pub enum Zone {
        Fixed(chrono::FixedOffset),
        Named(chrono_tz::Tz),
    }
}

/// Cell `row` of a native (non-string) Arrow array; `None` for a null.
pub(super) fn native_cell(a: &ArrayRef, row: usize) -> Result<Option<Cell>, String> {
    if a.is_null(row) {
        return Ok(None);
    }
    let cell = match a.data_type() {
        DataType::Date32 => {
            let days = a.as_primitive::<Date32Type>().value(row);
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).ok_or("no epoch")?;
            Cell::Date(
                epoch
                    .checked_add_signed(chrono::Duration::days(i64::from(days)))
                    .ok_or_else(|| format!("date {days} days from 1970 is out of range"))?,
            )
        }
        DataType::Date64 => {
            let ms = a.as_primitive::<Date64Type>().value(row);
            let (s, n) = split(ms, 1000);
            Cell::Date(utc_naive(s, n)?.date())
        }
        DataType::Time32(unit) | DataType::Time64(unit) => {
            let v = match unit {
                TimeUnit::Second => i64::from(a.as_primitive::<Time32SecondType>().value(row)),
                TimeUnit::Millisecond => {
                    i64::from(a.as_primitive::<Time32MillisecondType>().value(row))
                }
                TimeUnit::Microsecond => a.as_primitive::<Time64MicrosecondType>().value(row),
                TimeUnit::Nanosecond => a.as_primitive::<Time64NanosecondType>().value(row),
            };
            let (s, n) = split(v, per_second(unit));
            let t = u32::try_from(s)
                .ok()
                .and_then(|s| NaiveTime::from_num_seconds_from_midnight_opt(s, n))
                .ok_or_else(|| format!("time of day {v} is out of range"))?;
            Cell::LocalTime(t)
        }
        DataType::Timestamp(unit, tz) => {
            let v = match unit {
                TimeUnit::Second => a.as_primitive::<TimestampSecondType>().value(row),
                TimeUnit::Millisecond => a.as_primitive::<TimestampMillisecondType>().value(row),
                TimeUnit::Microsecond => a.as_primitive::<TimestampMicrosecondType>().value(row),
                TimeUnit::Nanosecond => a.as_primitive::<TimestampNanosecondType>().value(row),
            };
            let (s, n) = split(v, per_second(unit));
            let utc = utc_naive(s, n)?;
            match tz {
                None => Cell::LocalDateTime(utc),
                Some(tz) => match zone(tz)? {
                    either::Zone::Fixed(offset) => Cell::DateTime(offset.from_utc_datetime(&utc)),
                    either::Zone::Named(tz) => {
                        Cell::ZonedDateTime(tz.from_utc_datetime(&utc).naive_local(), tz)
                    }
                },
            }
        }
        DataType::Duration(unit) => {
            let v = match unit {
                TimeUnit::Second => a.as_primitive::<DurationSecondType>().value(row),
                TimeUnit::Millisecond => a.as_primitive::<DurationMillisecondType>().value(row),
                TimeUnit::Microsecond => a.as_primitive::<DurationMicrosecondType>().value(row),
                TimeUnit::Nanosecond => a.as_primitive::<DurationNanosecondType>().value(row),
            };
            let per = per_second(unit);
            Cell::Duration(Duration::normalized(
                0,
                0,
                v.div_euclid(per),
                v.rem_euclid(per) * (1_000_000_000 / per),
            ))
        }
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            let v = a.as_primitive::<IntervalMonthDayNanoType>().value(row);
            Cell::Duration(Duration::normalized(
                i64::from(v.months),
                i64::from(v.days),
                0,
                v.nanoseconds,
            ))
        }
        t if t.is_integer() => {
            let c = cast_strict(a, &DataType::Int64)?;
            Cell::Int(c.as_primitive::<Int64Type>().value(row))
        }
        t if t.is_floating() => {
            let c = cast_strict(a, &DataType::Float64)?;
            Cell::Float(c.as_primitive::<Float64Type>().value(row))
        }
        DataType::Boolean => Cell::Bool(a.as_boolean().value(row)),
        t if is_string(t) => {
            let c = cast_strict(a, &DataType::Utf8)?;
            Cell::Str(c.as_string::<i32>().value(row).to_owned())
        }
        other => return Err(format!("Arrow type {other} is not supported")),
    };
    Ok(Some(cell))
}

pub(super) fn per_second(unit: &TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    }
}

pub(super) fn cast_strict(array: &ArrayRef, target: &DataType) -> Result<ArrayRef, String> {
    if array.data_type() == target {
        return Ok(array.clone());
    }
    let safe = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    cast_with_options(array, target, &safe).map_err(|e| format!("cannot read as {target}: {e}"))
}

/// The cells of one column of element type `ty` (declared, or taken from
/// the Arrow type): strings are parsed, native values converted, and a
/// native type that is not `ty` is refused.
pub(super) fn element_cells(
    a: &ArrayRef,
    ty: Option<PropType>,
    row_of: RowOf<'_>,
) -> Result<(PropType, Vec<Option<Cell>>), String> {
    let native = native_kind(a.data_type());
    let ty = match (ty, native) {
        (Some(t), _) => t,
        (None, Some(n)) => n,
        (None, None) => return Err(format!("Arrow type {} is not supported", a.data_type())),
    };
    let mut cells = Vec::with_capacity(a.len());
    if is_string(a.data_type()) && ty != PropType::String {
        let strings = cast_strict(a, &DataType::Utf8)?;
        let strings = strings.as_string::<i32>();
        for row in 0..strings.len() {
            cells.push(if strings.is_valid(row) {
                Some(parse_cell(ty, strings.value(row)).map_err(|e| bad_value(row_of(row), e))?)
            } else {
                None
            });
        }
        return Ok((ty, cells));
    }
    let fits = match (ty, native) {
        (t, Some(n)) if t == n => true,
        // Any integer width into any integer type, each value range-checked.
        (t, Some(PropType::Int)) if t.int_range().is_some() => true,
        // Strict casts between the numeric types (an integer column declared float).
        (PropType::Float, Some(PropType::Int)) => true,
        (PropType::String, Some(PropType::Int | PropType::Float | PropType::Bool)) => true,
        _ => false,
    };
    if !fits {
        return Err(format!(
            "Arrow type {} cannot be read as {}",
            a.data_type(),
            ty.name()
        ));
    }
    let a = match ty {
        PropType::Float => cast_strict(a, &DataType::Float64)?,
        PropType::String => cast_strict(a, &DataType::Utf8)?,
        // Cast once, not once per cell.
        t if t.int_range().is_some() => cast_strict(a, &DataType::Int64)?,
        _ => a.clone(),
    };
    for row in 0..a.len() {
        let cell = native_cell(&a, row).map_err(|e| bad_value(row_of(row), e))?;
        if let Some(Cell::Int(v)) = cell {
            check_range(ty, v).map_err(|e| bad_value(row_of(row), e))?;
        }
        cells.push(cell);
    }
    Ok((ty, cells))
}

/// Float and decimal types: a cast to an integer would truncate.
pub(super) fn has_fraction_type(t: &DataType) -> bool {
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
pub(super) fn first_fraction(array: &ArrayRef) -> Option<usize> {
    // A decimal's text has exactly `scale` digits after the point; a float
    // cast to Float64 is exact.
    if matches!(
        array.data_type(),
        DataType::Float16 | DataType::Float32 | DataType::Float64
    ) {
        let f = cast_with_options(array, &DataType::Float64, &CastOptions::default()).ok()?;
        let f = f.as_primitive::<Float64Type>();
        return (0..f.len())
            .find(|&i| f.is_valid(i) && (f.value(i).fract() != 0.0 || !f.value(i).is_finite()));
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
pub(super) fn cell_text(array: &ArrayRef, i: usize) -> String {
    arrow::util::display::ArrayFormatter::try_new(array.as_ref(), &Default::default())
        .map(|f| format!("`{}`", f.value(i)))
        .unwrap_or_else(|_| "(unprintable)".into())
}
