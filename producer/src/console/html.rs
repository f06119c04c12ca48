//! HTML building blocks. Every piece of text that comes from events,
//! snapshots, the store, Redis or the request goes through [`esc`]: markup
//! is shown as text, and control characters (terminal escape sequences) as
//! visible `\x1b`-style codes.

use std::fmt::Write;

/// Escapes `text` for HTML element content and quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {
                write!(out, "\\x{:02x}", u32::from(c)).ok();
            }
            c => out.push(c),
        }
    }
    out
}

/// A JSON value as display text ("-" for null), escaped.
pub fn val(v: &serde_json::Value) -> String {
    esc(&plain(v))
}

/// A JSON value as plain text ("-" for null), not escaped.
pub fn plain(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "-".into(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Milliseconds since the epoch as UTC time, or "-".
pub fn time_ms(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "-".into())
}

/// Percent-encodes a query or path component.
pub fn url(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// What a page's frame needs to know about the viewer.
pub struct Viewer<'a> {
    /// Operator name and CSRF token when logged in.
    pub session: Option<&'a super::auth::Session>,
    /// Whether a token is configured at all.
    pub writable: bool,
}

/// The page frame: navigation, login state, the flash message, `body`.
/// `poll`: the JSON endpoint the page's script refreshes from.
pub fn page(
    title: &str,
    viewer: &Viewer,
    flash: Option<&str>,
    poll: Option<&str>,
    body: &str,
) -> String {
    let who = match (viewer.session, viewer.writable) {
        (Some(s), _) => format!(
            "operator <b id=\"operator\">{}</b> <form method=\"post\" action=\"/logout\" class=\"inline\"><button>log out</button></form>",
            esc(&s.operator)
        ),
        (None, true) => "<a id=\"login-link\" href=\"/login\">log in to act</a>".into(),
        (None, false) => "<span id=\"read-only\">read-only console (no operator token configured)</span>".into(),
    };
    let flash = flash
        .map(|f| format!("<p id=\"flash\" class=\"flash\">{}</p>", esc(f)))
        .unwrap_or_default();
    let poll = poll
        .map(|p| format!(" data-poll=\"{}\"", esc(p)))
        .unwrap_or_default();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} · snapswitch</title>\
<meta name=\"viewport\" content=\"width=device-width\"><link rel=\"stylesheet\" href=\"/static/console.css\"></head>\
<body{poll}><header><b>snapswitch</b> <nav><a href=\"/\">Fleet</a> <a href=\"/customers\">Customers</a> \
<a href=\"/parked\">Parked events</a></nav><span class=\"who\">{who}</span></header>{flash}<main><h1>{title}</h1>{body}</main>\
<script src=\"/static/console.js\"></script></body></html>",
        title = esc(title)
    )
}

/// A POST form with the session's CSRF token and hidden `fields`, shown as
/// one button; nothing when the viewer cannot act.
pub fn action_form(
    viewer: &Viewer,
    action: &str,
    fields: &[(&str, &str)],
    label: &str,
    id: &str,
) -> String {
    let Some(session) = viewer.session else {
        return String::new();
    };
    let mut hidden = format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"action\" value=\"{}\">",
        esc(&session.csrf),
        esc(action)
    );
    for (k, v) in fields {
        write!(
            hidden,
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            esc(k),
            esc(v)
        )
        .ok();
    }
    format!(
        "<form method=\"post\" action=\"/action\" class=\"inline\">{hidden}<button id=\"{}\">{}</button></form>",
        esc(id),
        esc(label)
    )
}

/// [`action_form`] whose button asks `question` in the page first (the
/// page's script shows it with a confirm button, then posts the form and
/// shows the result without a reload).
pub fn confirmed_action_form(
    viewer: &Viewer,
    action: &str,
    fields: &[(&str, &str)],
    label: &str,
    id: &str,
    question: &str,
) -> String {
    let form = action_form(viewer, action, fields, label, id);
    match form.strip_prefix("<form ") {
        Some(rest) => format!("<form data-confirm=\"{}\" {rest}", esc(question)),
        None => form,
    }
}

/// One load finished, for the chart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadPoint {
    pub at_ms: i64,
    pub seconds: f64,
    pub switched: bool,
}

/// An SVG chart of the last 24 hours: loads per hour (bars), each load's
/// duration (dots, right scale) and switches (marks on the time axis).
pub fn chart_svg(points: &[LoadPoint], now_ms: i64) -> String {
    const W: f64 = 720.0;
    const H: f64 = 200.0;
    const HOURS: i64 = 24;
    let start = now_ms - HOURS * 3_600_000;
    let recent: Vec<&LoadPoint> = points
        .iter()
        .filter(|p| p.at_ms >= start && p.at_ms <= now_ms)
        .collect();
    let mut per_hour = [0u32; HOURS as usize];
    for p in &recent {
        let h = ((p.at_ms - start) / 3_600_000).clamp(0, HOURS - 1) as usize;
        per_hour[h] += 1;
    }
    let max_count = per_hour.iter().copied().max().unwrap_or(0).max(1);
    let max_secs = recent
        .iter()
        .map(|p| p.seconds)
        .fold(0.0f64, f64::max)
        .max(1.0);
    let x = |ms: i64| (ms - start) as f64 / (HOURS * 3_600_000) as f64 * W;
    let bar_w = W / HOURS as f64;
    let mut svg = format!(
        "<svg id=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {}\" width=\"{W}\" height=\"{}\" role=\"img\" aria-label=\"loads per hour and load durations, last 24 hours\">",
        H + 30.0,
        H + 30.0
    );
    write!(
        svg,
        "<rect x=\"0\" y=\"0\" width=\"{W}\" height=\"{H}\" fill=\"#fafafa\" stroke=\"#ccc\"/>"
    )
    .ok();
    for (i, n) in per_hour.iter().enumerate() {
        if *n == 0 {
            continue;
        }
        let h = f64::from(*n) / f64::from(max_count) * (H - 10.0);
        write!(
            svg,
            "<rect class=\"bar\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#9ecae1\"><title>{n} loads</title></rect>",
            i as f64 * bar_w + 1.0,
            H - h,
            bar_w - 2.0
        ).ok();
    }
    for p in &recent {
        let cx = x(p.at_ms);
        let cy = H - p.seconds / max_secs * (H - 10.0);
        write!(
            svg,
            "<circle class=\"duration\" cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"3\" fill=\"#d6604d\"><title>{:.1} s</title></circle>",
            p.seconds
        ).ok();
        if p.switched {
            write!(
                svg,
                "<path class=\"switch\" d=\"M{cx:.1} {H} l-4 8 h8 z\" fill=\"#238b45\"><title>switch</title></path>"
            ).ok();
        }
    }
    write!(
        svg,
        "<text x=\"2\" y=\"{}\" font-size=\"11\">24 h ago</text><text x=\"{}\" y=\"{}\" font-size=\"11\">now</text>\
<text x=\"4\" y=\"12\" font-size=\"11\">bars: loads/hour (max {max_count}) · dots: duration (max {max_secs:.1} s) · ▲ switch</text></svg>",
        H + 24.0,
        W - 24.0,
        H + 24.0
    ).ok();
    svg
}

pub const CSS: &str = r#"body{font-family:system-ui,sans-serif;margin:0;color:#222}
header{background:#263238;color:#fff;padding:8px 16px;display:flex;gap:16px;align-items:center}
header a{color:#cfd8dc;margin-right:12px}header .who{margin-left:auto}
main{padding:8px 16px}table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#eceff1}.inline{display:inline}.flash{background:#fff8e1;border:1px solid #ffe082;padding:6px 16px;margin:0}
.muted{color:#777}.bad{color:#b71c1c}.good{color:#1b5e20}pre{background:#f5f5f5;padding:8px;white-space:pre-wrap;word-break:break-all}
form.filters input,form.filters select{margin-right:8px}td.changed{white-space:pre-line}"#;

/// Forms with `data-confirm` ask first in the page's `#confirm-box`, then
/// post with `Accept: application/json` and show the result in `#flash`
/// (a held row acted on is removed). Polls the page's `data-poll` endpoint every second and writes values
/// into elements with `data-field="a.b"` (textContent only: never markup).
/// Tables with `data-rows="list"` are rebuilt from that list, one cell per
/// `data-cols` path.
pub const JS: &str = r#"(function(){
  var box=document.getElementById('confirm-box'), pending=null;
  function say(text){var f=document.getElementById('flash');
    if(!f){f=document.createElement('p');f.id='flash';f.className='flash';document.body.insertBefore(f,document.querySelector('main'));}
    f.textContent=text;}
  document.querySelectorAll('form[data-confirm]').forEach(function(form){
    form.addEventListener('submit',function(ev){ if(!box) return; ev.preventDefault(); pending=form;
      document.getElementById('confirm-text').textContent=form.getAttribute('data-confirm'); box.hidden=false;});});
  if(box){
    document.getElementById('confirm-cancel').addEventListener('click',function(){pending=null;box.hidden=true;});
    document.getElementById('confirm').addEventListener('click',function(){
      var form=pending; if(!form) return; pending=null; box.hidden=true;
      form.querySelectorAll('button').forEach(function(b){b.disabled=true;});
      fetch(form.getAttribute('action'),{method:'POST',credentials:'same-origin',headers:{'Accept':'application/json'},body:new URLSearchParams(new FormData(form))})
        .then(function(r){return r.json();}).then(function(d){say(d.effect||d.error||'');
          var row=form.closest('tr'); if(d.ok&&row) row.remove();
          else form.querySelectorAll('button').forEach(function(b){b.disabled=false;});})
        .catch(function(e){say('refused: '+e);});});
  }
  var src=document.body.getAttribute('data-poll'); if(!src) return;
  function get(o,p){return p.split('.').reduce(function(a,k){return a==null?a:a[k];},o);}
  function show(v){return v==null?'-':(typeof v==='object'?JSON.stringify(v):String(v));}
  function tick(){
    fetch(src,{headers:{'Accept':'application/json'},credentials:'same-origin'}).then(function(r){return r.json();}).then(function(d){
      document.querySelectorAll('[data-field]').forEach(function(el){
        var t=show(get(d,el.getAttribute('data-field'))); if(el.textContent!==t) el.textContent=t;});
      document.querySelectorAll('tbody[data-rows]').forEach(function(tb){
        var list=get(d,tb.getAttribute('data-rows'))||[]; var cols=tb.getAttribute('data-cols').split(',');
        var rows=document.createDocumentFragment();
        list.forEach(function(item){var tr=document.createElement('tr');
          cols.forEach(function(c){var td=document.createElement('td');td.textContent=show(get(item,c));td.className='c-'+c.replace(/\./g,'-');tr.appendChild(td);});
          rows.appendChild(tr);});
        tb.replaceChildren(rows);});
      document.body.setAttribute('data-updated',String(Date.now()));
    }).catch(function(){});
  }
  tick(); setInterval(tick,1000);
})();"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_is_shown_as_text() {
        let table = [
            (
                "<script>alert(1)</script>",
                "&lt;script&gt;alert(1)&lt;/script&gt;",
            ),
            ("a\"b'c&d", "a&quot;b&#39;c&amp;d"),
            ("\u{1b}[31mred\u{1b}[0m", "\\x1b[31mred\\x1b[0m"),
            ("line\nnext", "line\nnext"),
            ("\u{7}bell\u{0}", "\\x07bell\\x00"),
        ];
        for (input, want) in table {
            assert_eq!(esc(input), want, "{input:?}");
        }
    }

    #[test]
    fn action_forms_only_for_logged_in_operators_and_carry_csrf() {
        let anon = Viewer {
            session: None,
            writable: true,
        };
        assert_eq!(action_form(&anon, "pause", &[], "Pause", "pause"), "");
        let s = super::super::auth::Session {
            operator: "ann".into(),
            csrf: "tok\"en".into(),
        };
        let ann = Viewer {
            session: Some(&s),
            writable: true,
        };
        let f = action_form(&ann, "cancel", &[("customer", "<x>")], "Cancel", "c");
        assert!(f.contains("name=\"csrf\" value=\"tok&quot;en\""), "{f}");
        assert!(f.contains("value=\"&lt;x&gt;\""), "{f}");
        assert!(f.starts_with("<form method=\"post\""), "{f}");
    }

    #[test]
    fn chart_counts_loads_per_hour_and_marks_switches() {
        let now = 100 * 3_600_000;
        let points = [
            LoadPoint {
                at_ms: now - 1_000,
                seconds: 2.0,
                switched: true,
            },
            LoadPoint {
                at_ms: now - 2_000,
                seconds: 4.0,
                switched: false,
            },
            LoadPoint {
                at_ms: now - 30 * 3_600_000,
                seconds: 9.0,
                switched: true,
            },
        ];
        let svg = chart_svg(&points, now);
        assert_eq!(svg.matches("class=\"bar\"").count(), 1);
        assert!(svg.contains("<title>2 loads</title>"), "{svg}");
        assert_eq!(svg.matches("class=\"duration\"").count(), 2);
        assert_eq!(svg.matches("class=\"switch\"").count(), 1);
        assert!(svg.contains("max 4.0 s"), "{svg}");
    }
}
