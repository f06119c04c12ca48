//! Values as Cypher literals (FalkorDB takes parameters as a `CYPHER
//! name=value` prefix of the query text): [`write_literal`] is the one place
//! that must escape correctly, and the rows parameter of a write batch.

use super::*;

/// Appends `v` as a Cypher literal FalkorDB parses back to the same value.
pub fn write_literal(out: &mut String, v: Value<'_>) -> Result<(), GraphError> {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        Value::Int(i) => {
            write!(out, "{i}").ok();
        }
        Value::Float(f) if f.is_finite() => {
            // Debug keeps a decimal point or exponent, so it reads back as a float.
            write!(out, "{f:?}").ok();
        }
        Value::Float(f) => {
            return Err(GraphError::Permanent(format!(
                "float value {f} cannot be stored (not finite)"
            )));
        }
        Value::Cell(c) => write_cell(out, c)?,
        Value::Str(s) => {
            // FalkorDB decodes \\ and \' (among others) inside quotes and
            // passes every other character through raw; a NUL would end the
            // query text early, so it is refused (measured: docs/notes/falkordb-facts.md).
            if s.contains('\0') {
                return Err(GraphError::Permanent(
                    "string value contains a NUL character, which FalkorDB cannot store".into(),
                ));
            }
            out.push('\'');
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\'' => out.push_str("\\'"),
                    c => out.push(c),
                }
            }
            out.push('\'');
        }
    }
    Ok(())
}

pub(super) fn refuse(ty: &str, why: &str) -> GraphError {
    GraphError::Permanent(format!(
        "FalkorDB 4.16 cannot store `{ty}` values{why}; load this snapshot into a Neo4j target, or declare the column `string` to keep the text"
    ))
}

pub(super) fn write_str(out: &mut String, s: &str) {
    out.push('\'');
    out.push_str(s);
    out.push('\'');
}

/// The FalkorDB function that builds a value of `ty` from its parameter,
/// or a refusal naming the type when FalkorDB 4.16 has none. Measured on
/// 4.16.3 (docs/notes/falkordb-facts.md, "Temporal values and points"):
/// `date`, `localtime`, `localdatetime`, `duration` and `point` exist;
/// zoned `time` and `datetime` do not.
pub(super) fn constructor(ty: PropType) -> Result<Option<&'static str>, GraphError> {
    Ok(match ty {
        PropType::Date => Some("date"),
        PropType::LocalTime => Some("localtime"),
        PropType::LocalDateTime => Some("localdatetime"),
        PropType::Duration => Some("duration"),
        PropType::Point => Some("point"),
        PropType::Time => return Err(refuse("time", " (it has no time-with-offset type)")),
        PropType::DateTime => {
            return Err(refuse("datetime", " (it has no date-time-with-zone type)"))
        }
        PropType::Int
        | PropType::Int32
        | PropType::Short
        | PropType::Byte
        | PropType::Float
        | PropType::Bool
        | PropType::String => None,
    })
}

/// The expression that stores column `values` from the row expression `e`.
pub(super) fn wrap(values: &super::super::Values, e: String) -> String {
    let Some(CellKind { ty, array }) = values.cell_kind() else {
        return e;
    };
    match (constructor(ty), array) {
        (Ok(Some(f)), false) => format!("{f}({e})"),
        (Ok(Some(f)), true) => format!("[x IN {e} | {f}(x)]"),
        // Refused when the literal is written (`write_cell`).
        _ => e,
    }
}

/// A cell as the literal its constructor function takes: FalkorDB 4.16
/// keeps whole seconds only in `localtime`/`localdatetime`, turns a
/// fractional or negative duration into null, and stores points as 32-bit
/// floats (measured); each of those is refused here, naming the value, so
/// nothing is stored different from the file.
pub(super) fn write_cell(out: &mut String, c: &Cell) -> Result<(), GraphError> {
    use chrono::{Datelike, Timelike};
    match c {
        Cell::Int(i) => write_literal(out, Value::Int(*i))?,
        Cell::Float(f) => write_literal(out, Value::Float(*f))?,
        Cell::Bool(b) => write_literal(out, Value::Bool(*b))?,
        Cell::Str(s) => write_literal(out, Value::Str(s))?,
        Cell::Date(d) => {
            if !(1..=9999).contains(&d.year()) {
                return Err(refuse(
                    "date",
                    &format!(" outside the years 1 to 9999 (value {d})"),
                ));
            }
            write_str(out, &d.format("%Y-%m-%d").to_string());
        }
        Cell::LocalTime(t) => {
            if t.nanosecond() != 0 {
                return Err(refuse(
                    "localtime",
                    &format!(
                        " with fractions of a second (value {t}: it keeps whole seconds only)"
                    ),
                ));
            }
            write_str(out, &t.format("%H:%M:%S").to_string());
        }
        Cell::LocalDateTime(t) => {
            if t.nanosecond() != 0 {
                return Err(refuse(
                    "localdatetime",
                    &format!(
                        " with fractions of a second (value {t}: it keeps whole seconds only)"
                    ),
                ));
            }
            if !(1..=9999).contains(&t.year()) {
                return Err(refuse(
                    "localdatetime",
                    &format!(" outside the years 1 to 9999 (value {t})"),
                ));
            }
            write_str(out, &t.format("%Y-%m-%dT%H:%M:%S").to_string());
        }
        Cell::Time(..) => constructor(PropType::Time).map(|_| ())?,
        Cell::DateTime(_) | Cell::ZonedDateTime(..) => {
            constructor(PropType::DateTime).map(|_| ())?
        }
        Cell::Duration(d) => {
            if d.months < 0 || d.days < 0 || d.seconds < 0 || d.nanos != 0 {
                return Err(refuse(
                    "duration",
                    &format!(" that are negative or have fractions of a second (value {d:?})"),
                ));
            }
            // FalkorDB keeps a duration as one count of seconds and splits it
            // back into months and days on reading: PT90000S reads as P1DT1H,
            // P31D as P1M, P1M30D as P2M2D (measured). Only durations that
            // read back as written are stored.
            let max_days = if d.months == 0 { 30 } else { 27 };
            if d.seconds >= 86_400 || d.days > max_days {
                return Err(refuse("duration", &format!(" with 24 hours or more in the time part, or more than {max_days} days (value {d:?}: it would read back as other days and months)")));
            }
            let (h, m, s) = (d.seconds / 3600, d.seconds / 60 % 60, d.seconds % 60);
            write!(out, "'P{}M{}DT{h}H{m}M{s}S'", d.months, d.days).ok();
        }
        Cell::Point(p) => {
            if p.srid != 4326 {
                return Err(refuse(
                    "point",
                    &format!(" other than 2D WGS-84 latitude/longitude (srid {})", p.srid),
                ));
            }
            let exact = |v: f64| f64::from(v as f32) == v;
            if !exact(p.x) || !exact(p.y) {
                return Err(refuse("point", &format!(" whose coordinates are not exact 32-bit floats (latitude {}, longitude {}: it keeps 32-bit floats)", p.y, p.x)));
            }
            write!(out, "{{latitude: {:?}, longitude: {:?}}}", p.y, p.x).ok();
        }
        Cell::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_cell(out, item)?;
            }
            out.push(']');
        }
    }
    Ok(())
}

/// `CYPHER rows=[[v, v, …], …] ` for the given rows and columns; with
/// `ends`, each row starts with its two internal node ids. `names[j]` names
/// column `j` in a refusal.
pub(super) fn rows_param(
    rows: &[usize],
    ends: Option<&[[super::super::NodeRef; 2]]>,
    columns: &[&super::super::Values],
    names: &[&str],
) -> Result<String, GraphError> {
    let mut out = String::with_capacity(16 + rows.len() * (columns.len() + 2) * 12);
    out.push_str("CYPHER rows=[");
    for (i, &row) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('[');
        let mut first = true;
        if let Some([a, b]) = ends.and_then(|e| e.get(i)) {
            write!(out, "{a},{b}").ok();
            first = false;
        }
        for (j, col) in columns.iter().enumerate() {
            if !first {
                out.push(',');
            }
            first = false;
            write_literal(&mut out, col.get(row)).map_err(|e| match e {
                GraphError::Permanent(m) => GraphError::Permanent(format!(
                    "property `{}`: {m}",
                    names.get(j).copied().unwrap_or("?")
                )),
                other => other,
            })?;
        }
        out.push(']');
    }
    out.push_str("] ");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(v: Value<'_>) -> String {
        let mut s = String::new();
        write_literal(&mut s, v).unwrap();
        s
    }

    #[test]
    fn literals() {
        assert_eq!(lit(Value::Null), "null");
        assert_eq!(lit(Value::Int(-3)), "-3");
        assert_eq!(lit(Value::Float(1.0)), "1.0");
        assert_eq!(lit(Value::Bool(true)), "true");
        assert_eq!(lit(Value::Str(r#"a'b"c\d"#)), r#"'a\'b"c\\d'"#);
        assert!(write_literal(&mut String::new(), Value::Str("a\0b")).is_err());
        let mut s = String::new();
        assert!(write_literal(&mut s, Value::Float(f64::NAN)).is_err());
    }
}
