//! HTML building blocks: escaping, the page frame (header, navigation, language
//! toggle, the one stylesheet) and small helpers. Every value that comes from an agent
//! or a user (hostnames, tags, sites, org names) goes through [`esc`]. Pure.

use super::i18n::{Key, Lang};

/// `s` safe inside HTML text and double-quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// `s` as one URL query or path component (RFC 3986 unreserved kept, the rest
/// percent-encoded), for links built from ids.
pub fn url_component(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where the page's stylesheet is served. A file, not a `<style>` block: the
/// Content-Security-Policy (`crate::security::CSP`) allows no inline style.
pub const STYLESHEET_PATH: &str = "/static/veille.css";

/// The stylesheet: [`STYLE`] and the legend's colour swatches, one class per state
/// whose colour comes from [`crate::web::svg::State::colour`] (the chart's own).
pub fn stylesheet() -> String {
    let mut css = STYLE.trim_start().to_owned();
    for st in crate::web::svg::State::ALL {
        css.push_str(&format!(
            ".legend .state-{}{{background:{}}}\n",
            st.code(),
            st.colour()
        ));
    }
    css
}

/// System fonts, contrast of at least 4.5:1 for text, a visible focus ring for
/// keyboard users.
const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif;color:#1a1a1a;background:#fafafa}
a{color:#0b4f9c}
a:focus,button:focus,input:focus,select:focus,summary:focus{outline:3px solid #e07b00;outline-offset:2px}
header{background:#123a63;color:#fff;padding:.5rem 1rem;display:flex;flex-wrap:wrap;gap:1rem;align-items:center}
header a{color:#fff}
header nav{display:flex;gap:1rem;flex-wrap:wrap}
header .right{margin-left:auto;display:flex;gap:1rem;align-items:center}
header form{margin:0}
header button{background:transparent;color:#fff;border:1px solid #fff;border-radius:4px;padding:.2rem .6rem;font:inherit;cursor:pointer}
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:#fff;color:#000;padding:.5rem}
main{max-width:1100px;margin:0 auto;padding:1rem}
h1{font-size:1.6rem;margin:.5rem 0 1rem}h2{font-size:1.2rem;margin:1.5rem 0 .5rem}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:1rem}
.card{background:#fff;border:1px solid #d0d0d0;border-radius:6px;padding:.8rem 1rem}
.card .big{font-size:1.5rem;font-weight:600}
.card .label{color:#4a4a4a}
table{border-collapse:collapse;background:#fff;width:100%}
th,td{border:1px solid #d0d0d0;padding:.3rem .5rem;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
caption{text-align:left;font-weight:600;padding:.3rem 0}
form.inline{display:flex;gap:.5rem;align-items:end;flex-wrap:wrap;margin:.5rem 0}
label{display:block;font-weight:600}
input,select,button{font:inherit;padding:.3rem .5rem}
button.primary,.button{background:#0b4f9c;color:#fff;border:0;border-radius:4px;padding:.4rem .8rem;text-decoration:none;display:inline-block}
.error{background:#fde8e8;border:1px solid #b00020;color:#7a0015;padding:.5rem 1rem;border-radius:4px}
.muted{color:#4a4a4a;font-size:.9rem}
th.sub{font-weight:normal;padding-left:1.5rem}
.scroll{overflow-x:auto}
textarea{font-family:monospace;width:100%;max-width:60rem}
svg.change .before{fill:#5b7fa6}
svg.change .after{fill:#123a63}
svg.change .whisker{stroke:#b00020;stroke-width:2}
.legend{display:flex;gap:1rem;flex-wrap:wrap;list-style:none;padding:0}
.legend span{display:inline-block;width:1em;height:1em;vertical-align:middle;margin-right:.3em;border:1px solid #555}
svg{max-width:100%;height:auto;background:#fff;border:1px solid #d0d0d0}
details{margin:.5rem 0}
"#;

/// Navigation of a logged-in page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Consumption,
    Devices,
    Renewal,
    Compliance,
    Rooms,
    Savings,
    Compare,
    Replay,
    None,
}

/// A whole page: `<head>`, header with navigation and language toggle (when
/// `logged_in`), then `body` inside `<main>`. `path_query` is the current path and
/// query without `lang`, used for the toggle link.
pub fn page(
    lang: Lang,
    title: &str,
    nav: Nav,
    logged_in: bool,
    path_query: &str,
    body: &str,
) -> String {
    let t = |k| lang.t(k);
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n");
    h.push_str(&format!("<html lang=\"{}\">\n<head>\n", lang.code()));
    h.push_str("<meta charset=\"utf-8\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    h.push_str(&format!(
        "<title>{} — {}</title>\n",
        esc(title),
        t(Key::AppTitle)
    ));
    h.push_str(&format!(
        "<link rel=\"stylesheet\" href=\"{STYLESHEET_PATH}\">\n</head>\n<body>\n"
    ));
    h.push_str(&format!(
        "<a class=\"skip\" href=\"#main\">{}</a>\n",
        t(Key::SkipToContent)
    ));
    h.push_str("<header>\n");
    h.push_str(&format!("<strong>{}</strong>\n", t(Key::AppTitle)));
    if logged_in {
        h.push_str("<nav aria-label=\"main\">");
        for (n, href, key) in [
            (Nav::Overview, "/", Key::Overview),
            (Nav::Consumption, "/consumption", Key::Consumption),
            (Nav::Devices, "/devices", Key::Devices),
            (Nav::Renewal, "/renewal", Key::Renewal),
            (Nav::Compliance, "/compliance", Key::Compliance),
            (Nav::Rooms, "/rooms", Key::Rooms),
            (Nav::Replay, "/replay", Key::Replay),
            (Nav::Savings, "/savings", Key::Savings),
            (Nav::Compare, "/compare", Key::Compare),
        ] {
            let current = if n == nav {
                " aria-current=\"page\""
            } else {
                ""
            };
            h.push_str(&format!("<a href=\"{href}\"{current}>{}</a>", t(key)));
        }
        h.push_str("</nav>\n");
    }
    h.push_str("<div class=\"right\">");
    let sep = if path_query.contains('?') { '&' } else { '?' };
    h.push_str(&format!(
        "<a href=\"{}{sep}lang={}\" lang=\"{}\" hreflang=\"{}\">{}</a>",
        esc(path_query),
        lang.other().code(),
        lang.other().code(),
        lang.other().code(),
        t(Key::Language)
    ));
    if logged_in {
        h.push_str(&format!(
            "<form method=\"post\" action=\"/logout\"><button type=\"submit\">{}</button></form>",
            t(Key::SignOut)
        ));
    }
    h.push_str("</div>\n</header>\n");
    h.push_str("<main id=\"main\">\n");
    h.push_str(body);
    h.push_str("\n</main>\n</body>\n</html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_defuses_markup_and_attributes() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(esc("poste-01 é"), "poste-01 é");
    }

    #[test]
    fn url_components_are_percent_encoded() {
        assert_eq!(url_component("abc-1.2_3~"), "abc-1.2_3~");
        assert_eq!(url_component("a b/c?d&e"), "a%20b%2Fc%3Fd%26e");
        assert_eq!(url_component("é"), "%C3%A9");
    }

    #[test]
    fn a_page_has_language_title_and_navigation() {
        let p = page(Lang::En, "A<b", Nav::Devices, true, "/devices", "<p>x</p>");
        assert!(p.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
        assert!(p.contains("<title>A&lt;b — Veille</title>"));
        assert!(p.contains("<a href=\"/devices\" aria-current=\"page\">Devices</a>"));
        assert!(p.contains("href=\"/devices?lang=fr\""));
        assert!(p.contains("action=\"/logout\""));
        assert!(p.contains("<main id=\"main\">\n<p>x</p>"));
        let login = page(Lang::Fr, "Connexion", Nav::None, false, "/login", "");
        assert!(!login.contains("/logout"));
        assert!(!login.contains("<nav"));
    }
}
