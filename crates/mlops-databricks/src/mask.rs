//! Masking of token-like text before it goes into an error message.

/// Maximum number of characters of a raw response body quoted in an error.
pub(crate) const MAX_QUOTED_CHARS: usize = 200;

/// Replacement text for a masked word.
const MASK: &str = "***";

/// Prefixes of Databricks credentials: personal access tokens (`dapi`), OAuth
/// secrets (`dose`), `dkea` tokens and JWT access tokens (`eyJ`).
const TOKEN_PREFIXES: [&str; 4] = ["dapi", "dose", "dkea", "eyJ"];

/// Words after which the next word is a credential, compared case-insensitively.
const CREDENTIAL_LABELS: [&str; 7] = [
    "bearer",
    "basic",
    "token",
    "access_token",
    "client_secret",
    "password",
    "secret",
];

/// Masks token-like words and cuts the text to [`MAX_QUOTED_CHARS`] characters.
pub(crate) fn quote_body(text: &str) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    truncate(&mask_tokens(&collapsed), MAX_QUOTED_CHARS)
}

/// Replaces every word that looks like a credential with `***`.
///
/// A word is a run of ASCII letters, digits and `-_.~+/`. It is masked when it starts
/// with a Databricks token prefix, when it is at least 24 characters long, mixes letters
/// and digits and is not a UUID, or when it follows a label such as `Bearer` or `token=`.
pub(crate) fn mask_tokens(text: &str) -> String {
    let mut output = String::with_capacity(text.len());
    let mut previous_word = String::new();
    let mut rest = text;

    while let Some(first) = rest.chars().next() {
        let word_len = rest.find(|c: char| !is_word_char(c)).unwrap_or(rest.len());
        if word_len == 0 {
            output.push(first);
            rest = &rest[first.len_utf8()..];
            continue;
        }

        let word = &rest[..word_len];
        if looks_like_token(word) || is_credential_label(&previous_word) {
            output.push_str(MASK);
        } else {
            output.push_str(word);
        }

        previous_word = word.to_owned();
        rest = &rest[word_len..];
    }

    output
}

/// Cuts `text` to at most `max_chars` characters, marking the cut with `…`.
pub(crate) fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((byte_index, _)) => format!("{}…", &text[..byte_index]),
        None => text.to_owned(),
    }
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '+' | '/')
}

fn looks_like_token(word: &str) -> bool {
    if is_uuid(word) {
        return false;
    }

    let prefixed = word.len() >= 12 && TOKEN_PREFIXES.iter().any(|prefix| word.starts_with(prefix));
    let has_digit = word.chars().any(|c| c.is_ascii_digit());
    let has_letter = word.chars().any(|c| c.is_ascii_alphabetic());

    prefixed || (word.len() >= 24 && has_digit && has_letter)
}

/// Tells whether `word` is a canonical UUID (8-4-4-4-12 hex digits), which is an id such
/// as an application id, not a credential.
fn is_uuid(word: &str) -> bool {
    let groups: Vec<&str> = word.split('-').collect();
    let lengths = [8, 4, 4, 4, 12];
    groups.len() == lengths.len()
        && groups.iter().zip(lengths).all(|(group, length)| {
            group.len() == length && group.chars().all(|c| c.is_ascii_hexdigit())
        })
}

fn is_credential_label(word: &str) -> bool {
    CREDENTIAL_LABELS
        .iter()
        .any(|label| word.eq_ignore_ascii_case(label))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_databricks_token() {
        let masked = mask_tokens("bad token dapi0123456789abcdef0123456789abcdef here");
        assert!(!masked.contains("dapi0123"), "{masked}");
        assert!(masked.contains("here"), "{masked}");
    }

    #[test]
    fn masks_word_after_bearer_label() {
        let masked = mask_tokens("Authorization: Bearer abc, ok");
        assert_eq!(masked, "Authorization: Bearer ***, ok");
    }

    #[test]
    fn masks_query_style_secret() {
        let masked = mask_tokens("client_secret=short1&x=1");
        assert_eq!(masked, "client_secret=***&x=1");
    }

    #[test]
    fn keeps_uuids() {
        let text = "Principal 0b9f1a52-1111-4222-8333-944455556666 does not exist";
        assert_eq!(mask_tokens(text), text);
    }

    #[test]
    fn keeps_plain_words() {
        let text = "Scope x does not exist! Please retry later.";
        assert_eq!(mask_tokens(text), text);
    }

    #[test]
    fn quote_body_cuts_long_text() {
        let quoted = quote_body(&"word ".repeat(100));
        assert_eq!(quoted.chars().count(), MAX_QUOTED_CHARS + 1);
        assert!(quoted.ends_with('…'));
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("ééé", 2), "éé…");
        assert_eq!(truncate("ab", 2), "ab");
    }
}
