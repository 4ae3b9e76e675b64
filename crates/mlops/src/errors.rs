//! Prints an error with its causes and a hint.

use std::io::Write;

/// Prints `error:` with the cause chain and, where one is known, a hint.
pub fn print(error: &anyhow::Error) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {}", mask_tokens(&error.to_string()));
    for cause in error.chain().skip(1) {
        let _ = writeln!(stderr, "  caused by: {}", mask_tokens(&cause.to_string()));
    }
    if let Some(hint) = hint(error) {
        let _ = writeln!(stderr, "\nhint: {}", mask_tokens(&hint));
    }
}

/// Replaces anything shaped like a Databricks token (`dapi` and 32 or more hex digits) with a
/// mask, so that a token pasted into the wrong place never reaches a CI log through an error.
pub fn mask_tokens(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("dapi") {
        let digits = rest[start + 4..].bytes().take_while(u8::is_ascii_hexdigit).count();
        out.push_str(&rest[..start]);
        if digits >= 32 {
            out.push_str("dapi****");
        } else {
            out.push_str(&rest[start..start + 4 + digits]);
        }
        rest = &rest[start + 4 + digits..];
    }
    out.push_str(rest);
    out
}


fn hint(error: &anyhow::Error) -> Option<String> {
    error.chain().find_map(|cause| {
        if let Some(error) = cause.downcast_ref::<mlops_config::ConfigError>() {
            return error.hint();
        }
        if let Some(error) = cause.downcast_ref::<mlops_state::StateError>() {
            return error.hint();
        }
        if let Some(error) = cause.downcast_ref::<mlops_engine::EngineError>() {
            return error.hint();
        }
        if let Some(error) = cause.downcast_ref::<mlops_plan::PlanError>() {
            return error.hint();
        }
        cause.downcast_ref::<crate::commands::Hinted>().map(|hinted| hinted.hint.clone())
    })
}

#[cfg(test)]
mod tests {
    use super::mask_tokens;

    #[test]
    fn mask_tokens_hides_token_shapes() {
        let token = format!("dapi{}", "0123456789abcdef".repeat(2));
        assert_eq!(mask_tokens(&format!("bad value `{token}` here")), "bad value `dapi****` here");
        assert_eq!(mask_tokens("dapi12 is short"), "dapi12 is short");
        assert_eq!(mask_tokens("no token"), "no token");
    }
}
