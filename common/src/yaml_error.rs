//! Where a YAML text failed to parse, told without any of its content.
//!
//! serde-saphyr's own message quotes the offending value (`invalid type:
//! string "..."`) and may add a snippet of the surrounding lines; for a
//! kubeconfig that is a token, a private key, or whatever else was pasted
//! there by mistake (issue 29: a `.env` line with the MySQL root password).
//! [`describe`] keeps only what comes from the expected shape (the type or
//! field serde wanted) and the place (line and column), so the text is safe
//! for CI logs.

use serde_saphyr::Error;

/// What went wrong and where, as `a value of the wrong kind, expected a
/// sequence, at line 3, column 9`: never a value of the input.
pub fn describe(error: &Error) -> String {
    let error = innermost(error);
    let what = match error {
        Error::SerdeInvalidType { expected, .. } | Error::SerdeInvalidValue { expected, .. } => {
            format!("a value of the wrong kind (expected {expected})")
        }
        Error::SerdeInvalidLength { expected, .. } => {
            format!("a list of the wrong length (expected {expected})")
        }
        Error::SerdeUnknownVariant { expected, .. } => {
            format!("an unknown value (expected one of {})", expected.join(", "))
        }
        Error::SerdeUnknownField { .. } => "an unknown field".to_owned(),
        Error::SerdeMissingField { field, .. } => format!("field `{field}` is missing"),
        Error::Unexpected { expected, .. } => {
            format!("a value of the wrong kind (expected {expected})")
        }
        Error::InvalidScalar { ty, .. } => format!("a value that is not a valid {ty}"),
        Error::NullIntoString { .. } => "an empty value where text belongs".to_owned(),
        Error::DuplicateMappingKey { .. } => "a key given twice".to_owned(),
        Error::Eof { .. } => "the text ends too early".to_owned(),
        Error::InvalidUtf8Input => "text that is not UTF-8".to_owned(),
        Error::MultipleDocuments { .. } => "more than one YAML document".to_owned(),
        Error::Budget { .. } => "a document too large or with too many aliases".to_owned(),
        // Syntax errors (the parser's messages) and anything else: the
        // place says enough, and no message of unknown make is repeated.
        _ => "broken YAML syntax".to_owned(),
    };
    match error.location() {
        Some(at) => format!("{what} at line {}, column {}", at.line(), at.column()),
        None => what,
    }
}

/// The error itself, under its snippet and alias wrappers.
fn innermost(error: &Error) -> &Error {
    match error.without_snippet() {
        Error::AliasError { error, .. } => innermost(error),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Shape {
        name: String,
        items: Vec<String>,
    }

    fn failure(text: &str) -> String {
        let error = serde_saphyr::from_str::<Shape>(text).expect_err(text);
        // The library's own message does quote the value: the reason for this module.
        describe(&error)
    }

    #[test]
    fn names_the_place_and_the_expected_shape_never_the_value() {
        let described = failure("name: a\nitems: SECRET-VALUE-1\n");
        assert!(!described.contains("SECRET"), "{described}");
        assert!(described.contains("line 2"), "{described}");
        assert!(
            described.contains("(expected ") && described.contains("sequence"),
            "{described}"
        );

        let described = failure("PHD_MYSQL_ROOT_PASSWORD=SECRET-VALUE-2\n");
        assert!(!described.contains("SECRET"), "{described}");
        assert!(described.contains("line 1, column 1"), "{described}");

        let described = failure("name: a\nitems: [x]\n  token: SECRET-VALUE-3: y\n");
        assert!(!described.contains("SECRET"), "{described}");
        assert!(described.contains("line 3"), "{described}");

        let described = failure("items: [x]\n");
        assert!(described.contains("field `name` is missing"), "{described}");
    }
}
