//! Turning a `toml` error into a [`ConfigError::Parse`] that names the line and the key.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

use super::ConfigError;

/// A TOML key as it would be written in a dotted path: bare when it can be, quoted otherwise.
pub(super) fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

/// The 1-based line holding byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Turns a `toml` error into a [`ConfigError::Parse`] with the line and the key, found by
/// looking the error's position up in the parsed document.
pub(super) fn toml_error(
    text: &str,
    origin: &str,
    doc: &DeTable<'_>,
    error: &toml::de::Error,
) -> ConfigError {
    let message = error.message().trim_end().to_owned();
    let mut line = None;
    let mut key = None;
    if let Some(span) = error.span() {
        line = Some(line_of(text, span.start));
        if let Some(found) = locate(doc, span.start) {
            key = Some(found.path.clone());
            // serde reports a bad field of a table at the table; point at the field instead.
            if let DeValue::Table(table) = found.value {
                if let Some(name) = quoted_after(&message, "unknown field `") {
                    if let Some((k, _)) = table.iter().find(|(k, _)| k.get_ref() == name) {
                        line = Some(line_of(text, k.span().start));
                        key = Some(format!("{}.{}", found.path, toml_key(name)));
                    }
                } else if let Some(name) = quoted_after(&message, "missing field `") {
                    key = Some(format!("{}.{}", found.path, toml_key(name)));
                }
            }
        } else if let Some(name) = quoted_after(&message, "missing field `") {
            key = Some(toml_key(name));
        } else if message == "duplicate key" {
            // Recovery keeps the first definition only: name the key by that one's path.
            let written = text.get(span.clone()).map(str::trim).unwrap_or_default();
            let name = written.trim_matches(['"', '\'']);
            key = first_definition(doc, name, span.start)
                .or_else(|| (!written.is_empty()).then(|| written.to_owned()));
        }
    }
    ConfigError::Parse {
        origin: origin.to_owned(),
        line,
        key,
        message,
    }
}

/// The text between `prefix` and the next backtick, when `message` starts with `prefix`.
fn quoted_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = message.strip_prefix(prefix)?;
    rest.split_once('`').map(|(name, _)| name)
}

/// The entry of a document whose key or value holds a byte offset.
struct Found<'d, 'i> {
    path: String,
    value: &'d DeValue<'i>,
    width: usize,
}

/// One entry of a parsed document, as [`walk`] visits it.
struct Entry<'a, 'd, 'i> {
    /// The dotted path, array elements as `[i]`.
    path: &'a str,
    /// The key as written; empty for an array element.
    name: &'a str,
    key_span: Range<usize>,
    value_span: Range<usize>,
    value: &'d DeValue<'i>,
}

/// Calls `f` for every entry of `doc`, array elements included (their key span is their
/// value span).
fn walk<'d, 'i>(doc: &'d DeTable<'i>, f: &mut dyn FnMut(Entry<'_, 'd, 'i>)) {
    fn visit<'d, 'i>(path: &str, value: &'d DeValue<'i>, f: &mut dyn FnMut(Entry<'_, 'd, 'i>)) {
        match value {
            DeValue::Table(table) => {
                for (k, v) in table.iter() {
                    let child = match path {
                        "" => toml_key(k.get_ref()),
                        _ => format!("{path}.{}", toml_key(k.get_ref())),
                    };
                    f(Entry {
                        path: &child,
                        name: k.get_ref(),
                        key_span: k.span(),
                        value_span: v.span(),
                        value: v.get_ref(),
                    });
                    visit(&child, v.get_ref(), f);
                }
            }
            DeValue::Array(array) => {
                for (i, v) in array.iter().enumerate() {
                    let child = format!("{path}[{i}]");
                    f(Entry {
                        path: &child,
                        name: "",
                        key_span: v.span(),
                        value_span: v.span(),
                        value: v.get_ref(),
                    });
                    visit(&child, v.get_ref(), f);
                }
            }
            _ => {}
        }
    }
    for (k, v) in doc.iter() {
        let path = toml_key(k.get_ref());
        f(Entry {
            path: &path,
            name: k.get_ref(),
            key_span: k.span(),
            value_span: v.span(),
            value: v.get_ref(),
        });
        visit(&path, v.get_ref(), f);
    }
}

/// Finds the narrowest key or value around byte `offset`. Tables opened by a `[header]` span
/// only the header, so every table is searched, not only those whose span holds `offset`.
fn locate<'d, 'i>(doc: &'d DeTable<'i>, offset: usize) -> Option<Found<'d, 'i>> {
    let holds =
        |span: &Range<usize>| span.contains(&offset) || (span.is_empty() && span.start == offset);
    let mut best: Option<Found<'d, 'i>> = None;
    walk(doc, &mut |entry| {
        for span in [entry.key_span, entry.value_span]
            .iter()
            .filter(|s| holds(s))
        {
            if best.as_ref().is_none_or(|b| span.len() < b.width) {
                best = Some(Found {
                    path: entry.path.to_owned(),
                    value: entry.value,
                    width: span.len(),
                });
            }
        }
    });
    best
}

/// The path of the last key named `name` defined before byte `offset`: the first definition
/// of a key that is defined again at `offset`.
fn first_definition(doc: &DeTable<'_>, name: &str, offset: usize) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    walk(doc, &mut |entry| {
        let start = entry.key_span.start;
        let later = best
            .as_ref()
            .is_none_or(|(best_start, _)| start > *best_start);
        if entry.name == name && start < offset && later {
            best = Some((start, entry.path.to_owned()));
        }
    });
    best.map(|(_, path)| path)
}

#[cfg(test)]
mod tests {
    use crate::config::tests::parse_err;
    use crate::config::Config;

    #[test]
    fn unknown_key_gives_line_and_key() {
        let text = "# provider\n[server]\nadress = \"127.0.0.1:8000\"\n";
        let err = Config::from_toml_str(text, "examples/provider.toml").unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.starts_with(
                "examples/provider.toml: line 3: key `server.adress`: unknown field `adress`, \
                 expected one of `address`"
            ),
            "{shown}"
        );
        let (line, key, _) = parse_err(Err(err));
        assert_eq!((line, key.as_deref()), (Some(3), Some("server.adress")));

        let (line, key, _) = parse_err(Config::from_toml_str("\n\nservr = 1\n", "t.toml"));
        assert_eq!((line, key.as_deref()), (Some(3), Some("servr")));
    }

    #[test]
    fn wrong_type_gives_line_and_key() {
        let text = "[server]\naddress = \"127.0.0.1:8000\"\n\n\nthreads = \"four\"\n";
        let err = Config::from_toml_str(text, "p.toml").unwrap_err();
        assert_eq!(
            err.to_string(),
            "p.toml: line 5: key `server.threads`: invalid type: string \"four\", expected usize"
        );
        let (line, key, _) = parse_err(Config::from_toml_str(
            "[client]\ntimeout = \"3 parsecs\"\n",
            "t.toml",
        ));
        assert_eq!((line, key.as_deref()), (Some(2), Some("client.timeout")));
        let (line, key, _) = parse_err(Config::from_toml_str("server.threads = -1\n", "t.toml"));
        assert_eq!((line, key.as_deref()), (Some(1), Some("server.threads")));
    }

    #[test]
    fn syntax_errors_give_the_line() {
        let (line, key, _) = parse_err(Config::from_toml_str("[server]\nthreads = \n", "t.toml"));
        assert_eq!((line, key.as_deref()), (Some(2), Some("server.threads")));
        let (line, key, _) = parse_err(Config::from_toml_str("[server\n", "t.toml"));
        assert_eq!((line, key), (Some(1), None));
        let (line, key, message) = parse_err(Config::from_toml_str(
            "[server]\nthreads = 4\nthreads = 5\n",
            "t.toml",
        ));
        assert_eq!(line, Some(3));
        assert_eq!(key.as_deref(), Some("server.threads"));
        assert!(message.contains("duplicate"), "{message}");
    }
}
