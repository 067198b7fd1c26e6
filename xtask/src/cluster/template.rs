//! `${NAME}` placeholders, filled as envsubst and the nginx image's templates fill them:
//! a name of capitals, digits and `_` in braces. Every placeholder outside comment lines
//! must get a value; placeholders mentioned in comments are left alone when unknown.

use std::collections::BTreeSet;

use anyhow::bail;

/// `text` with each `${NAME}` of `values` replaced by its value.
pub fn render(text: &str, values: &[(&str, String)]) -> anyhow::Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut unknown = BTreeSet::new();
    for line in text.split_inclusive('\n') {
        let comment = line.trim_start().starts_with('#');
        let mut rest = line;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let name_len = after
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(after.len());
            let name = &after[..name_len];
            if name.is_empty() || !after[name_len..].starts_with('}') {
                out.push_str("${");
                rest = after;
                continue;
            }
            match values.iter().find(|(n, _)| *n == name) {
                Some((_, value)) => out.push_str(value),
                None => {
                    if !comment {
                        unknown.insert(name.to_string());
                    }
                    out.push_str(&rest[start..start + 3 + name_len]);
                }
            }
            rest = &after[name_len + 1..];
        }
        out.push_str(rest);
    }
    if !unknown.is_empty() {
        bail!(
            "no value for {}",
            unknown.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_known_names_and_leaves_nginx_variables() {
        let text = "listen ${PORT};\nset $x $http_upgrade;\n# ${NAME} in a comment\n";
        let out = render(text, &[("PORT", "8080".into())]).unwrap();
        assert_eq!(
            out,
            "listen 8080;\nset $x $http_upgrade;\n# ${NAME} in a comment\n"
        );
    }

    #[test]
    fn a_placeholder_without_a_value_is_an_error() {
        let err = render("a ${ONE} ${TWO}\n", &[("ONE", "1".into())]).unwrap_err();
        assert_eq!(err.to_string(), "no value for TWO");
    }

    #[test]
    fn lowercase_and_unclosed_are_not_placeholders() {
        let text = "${lower} ${OPEN\n";
        assert_eq!(render(text, &[]).unwrap(), text);
    }
}
