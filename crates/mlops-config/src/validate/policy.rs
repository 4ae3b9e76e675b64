//! Checks of `tokens`, `token_usage`, `names` and `additional_token_usage_groups`.

use serde_saphyr::Spanned;

use super::{Report, position};
use crate::formats::ENTITLEMENTS;
use crate::raw::{RawNames, RawTokenUsage, RawTokenUsageMode, RawTokens, Text, TextList};
use crate::{Names, TokenPolicy, TokenUsage, TokenUsageMode};

/// Default token lifetime, the Terraform module's 8,640,000 seconds.
const DEFAULT_LIFETIME_DAYS: u32 = 100;

/// Default rotation window before expiry.
const DEFAULT_ROTATE_BEFORE_DAYS: u32 = 30;

/// Longest accepted token lifetime: two years, the lifetime newer Databricks SDK docs give a
/// token created without one. A workspace policy can cap it lower.
const MAX_LIFETIME_DAYS: u32 = 730;

/// The workspace group that always keeps `CAN_MANAGE` on token permissions.
const ADMINS: &str = "admins";

const DEFAULT_GROUP: &str = "mlops-service-principals";
const DEFAULT_SERVICE_PRINCIPAL: &str = "READ-only Model Registry Service Principal";
const DEFAULT_ENTITLEMENTS: [&str; 1] = ["allow-cluster-create"];
const DEFAULT_SCOPE_READERS: [&str; 1] = ["users"];

/// Checks `tokens` and fills in its defaults.
pub(crate) fn token_policy(
    report: &mut Report,
    tokens: Option<&Spanned<RawTokens>>,
) -> TokenPolicy {
    let lifetime = tokens.and_then(|tokens| tokens.value.lifetime_days.as_ref());
    let rotate = tokens.and_then(|tokens| tokens.value.rotate_before_days.as_ref());

    let lifetime_days = match lifetime {
        None => Some(DEFAULT_LIFETIME_DAYS),
        Some(value) => check_lifetime(report, value),
    };
    let rotate_before_days = match rotate {
        None => Some(DEFAULT_ROTATE_BEFORE_DAYS),
        Some(value) => check_rotate_before(report, value),
    };

    if let (Some(lifetime_days), Some(rotate_before_days)) = (lifetime_days, rotate_before_days)
        && rotate_before_days >= lifetime_days
    {
        let position = rotate.or(lifetime).and_then(position);
        let rotate_text = match rotate {
            Some(_) => rotate_before_days.to_string(),
            None => format!("{rotate_before_days}, the default"),
        };
        report.add(
            position,
            format!(
                "`tokens.rotate_before_days` ({rotate_text}) must be less than `tokens.lifetime_days` ({lifetime_days})"
            ),
            "lower `rotate_before_days` or raise `lifetime_days`, because otherwise every token is \
             due for rotation as soon as it is created",
        );
    }

    TokenPolicy {
        lifetime_days: lifetime_days.unwrap_or(DEFAULT_LIFETIME_DAYS),
        rotate_before_days: rotate_before_days.unwrap_or(DEFAULT_ROTATE_BEFORE_DAYS),
    }
}

/// Accepts 1 to 730 days.
fn check_lifetime(report: &mut Report, value: &Spanned<i64>) -> Option<u32> {
    let days = u32::try_from(value.value)
        .ok()
        .filter(|days| (1..=MAX_LIFETIME_DAYS).contains(days));
    if days.is_none() {
        report.add(
            position(value),
            format!("`tokens.lifetime_days` is {}: it must be between 1 and {MAX_LIFETIME_DAYS}", value.value),
            format!("write a number of days from 1 to {MAX_LIFETIME_DAYS} (the default is {DEFAULT_LIFETIME_DAYS})"),
        );
    }
    days
}

/// Accepts 0 days or more; the comparison with the lifetime happens afterwards.
fn check_rotate_before(report: &mut Report, value: &Spanned<i64>) -> Option<u32> {
    let days = u32::try_from(value.value).ok();
    if days.is_none() {
        report.add(
            position(value),
            format!("`tokens.rotate_before_days` is {}: it must be 0 or more", value.value),
            format!("write a number of days below `lifetime_days` (the default is {DEFAULT_ROTATE_BEFORE_DAYS})"),
        );
    }
    days
}

/// Checks `token_usage` and fills in its defaults.
pub(crate) fn token_usage(
    report: &mut Report,
    token_usage: Option<&Spanned<RawTokenUsage>>,
) -> TokenUsage {
    let raw = token_usage.map(|token_usage| &token_usage.value);
    let mode = match raw.and_then(|raw| raw.mode.as_ref()).map(|mode| mode.value) {
        None | Some(RawTokenUsageMode::Additive) => TokenUsageMode::Additive,
        Some(RawTokenUsageMode::Authoritative) => TokenUsageMode::Authoritative,
    };
    let allow_revoke_list = raw.and_then(|raw| raw.allow_revoke.as_ref());
    let allow_revoke = check_list(
        report,
        allow_revoke_list,
        "token_usage.allow_revoke",
        &[],
        |name| {
            is_admins(name).then(|| {
                (
                "`token_usage.allow_revoke` must not list `admins`".to_owned(),
                "admins always keeps CAN_MANAGE on token permissions, so mlops never revokes it. \
                 Remove `admins`"
                    .to_owned(),
            )
            })
        },
    );

    if let Some(list) = allow_revoke_list
        && mode == TokenUsageMode::Additive
    {
        report.add(
            position(list),
            "`token_usage.allow_revoke` is set but `token_usage.mode` is `additive`",
            "additive mode only removes grants that mlops made, so it never needs permission to \
             revoke. Set `mode: authoritative` or remove `allow_revoke`",
        );
    }

    TokenUsage { mode, allow_revoke }
}

/// Checks `names` and fills in the Terraform module's defaults.
pub(crate) fn names(report: &mut Report, names: Option<&RawNames>) -> Names {
    let group = check_name(
        report,
        names.and_then(|names| names.group.as_ref()),
        "names.group",
        DEFAULT_GROUP,
    );
    let service_principal = check_name(
        report,
        names.and_then(|names| names.service_principal.as_ref()),
        "names.service_principal",
        DEFAULT_SERVICE_PRINCIPAL,
    );
    let entitlements_list = names.and_then(|names| names.service_principal_entitlements.as_ref());
    let service_principal_entitlements = check_list(
        report,
        entitlements_list,
        "names.service_principal_entitlements",
        &DEFAULT_ENTITLEMENTS,
        |entitlement| {
            (!ENTITLEMENTS.contains(&entitlement)).then(|| {
                (
                    format!("unknown entitlement `{}`", entitlement.escape_debug()),
                    format!("use one of {}", ENTITLEMENTS.join(", ")),
                )
            })
        },
    );
    let scope_readers_list = names.and_then(|names| names.scope_readers.as_ref());
    let scope_readers = check_list(
        report,
        scope_readers_list,
        "names.scope_readers",
        &DEFAULT_SCOPE_READERS,
        |_| None,
    );

    Names {
        group,
        service_principal,
        service_principal_entitlements,
        scope_readers,
    }
}

/// Checks `additional_token_usage_groups`, which defaults to no group.
pub(crate) fn additional_groups(
    report: &mut Report,
    groups: Option<&TextList>,
    names: &Names,
) -> Vec<String> {
    check_list(
        report,
        groups,
        "additional_token_usage_groups",
        &[],
        |group| {
            if is_admins(group) {
                return Some((
                "`additional_token_usage_groups` must not list `admins`".to_owned(),
                "admins always keeps CAN_MANAGE on token permissions and mlops never changes it. \
                 Remove `admins`"
                    .to_owned(),
            ));
            }
            (group == names.group).then(|| {
            (
                format!("`additional_token_usage_groups` lists `{group}`, the service principal group"),
                "that group gets CAN_USE already, so remove it from this list".to_owned(),
            )
        })
        },
    )
}

/// Returns true for the `admins` group, in any letter case.
fn is_admins(name: &str) -> bool {
    name.eq_ignore_ascii_case(ADMINS)
}

/// Checks a display name: not empty and without surrounding whitespace.
fn check_name(report: &mut Report, value: Option<&Text>, key: &str, default: &str) -> String {
    let Some(value) = value else {
        return default.to_owned();
    };

    if value.value.trim().is_empty() || value.value.trim() != value.value {
        report.add(
            position(value),
            format!("`{key}` is empty or starts or ends with whitespace"),
            format!("write a display name, or remove `{key}` to use the default `{default}`"),
        );
    }
    value.value.clone()
}

/// Checks a list of names: no empty entry, no duplicate, and `extra` for each entry, which
/// returns a message and a hint for an entry it rejects.
fn check_list(
    report: &mut Report,
    list: Option<&TextList>,
    key: &str,
    default: &[&str],
    extra: impl Fn(&str) -> Option<(String, String)>,
) -> Vec<String> {
    let Some(list) = list else {
        return default.iter().map(|item| (*item).to_owned()).collect();
    };

    let mut items: Vec<String> = Vec::with_capacity(list.value.len());
    for item in &list.value {
        let text = item.value.as_str();
        if text.trim().is_empty() || text.trim() != text {
            report.add(
                position(item),
                format!("`{key}` has an entry that is empty or starts or ends with whitespace"),
                "write each name without surrounding spaces, or remove the entry",
            );
        } else if items.iter().any(|seen| seen == text) {
            report.add(
                position(item),
                format!("`{key}` lists `{text}` twice"),
                "remove the second entry",
            );
        } else if let Some((message, hint)) = extra(text) {
            report.add(position(item), message, hint);
        }
        items.push(text.to_owned());
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admins_in_any_case() {
        assert!(is_admins("admins"));
        assert!(is_admins("Admins"));
        assert!(!is_admins("admins-team"));
    }
}
