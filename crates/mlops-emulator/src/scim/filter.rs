//! SCIM filter expressions: `eq`, `ne`, `co`, `sw`, `ew` and `pr`, combined with `and`, `or`,
//! `not` and parentheses, evaluated against the JSON form of a resource.

use serde_json::Value;

/// A parsed filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Compare {
        attribute: String,
        operator: Operator,
        value: String,
    },
    Present {
        attribute: String,
    },
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operator {
    Equal,
    NotEqual,
    Contains,
    StartsWith,
    EndsWith,
}

/// One lexical token of a filter.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    Word(String),
    Text(String),
}

/// Parses `input`, accepting only the attributes in `allowed` (compared without regard to case)
/// and returning them in their `allowed` spelling.
pub(crate) fn parse(input: &str, allowed: &[&str]) -> Result<Filter, String> {
    let tokens = tokenize(input)?;
    let mut parser = Parser {
        tokens,
        position: 0,
        allowed,
    };
    let filter = parser.or_expression()?;
    if parser.position != parser.tokens.len() {
        return Err(format!(
            "unexpected token at position {} of the filter",
            parser.position + 1
        ));
    }
    Ok(filter)
}

/// Splits a filter into parentheses, quoted strings and words.
fn tokenize(input: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            '"' => {
                chars.next();
                tokens.push(Token::Text(quoted_string(&mut chars)?));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || c == '(' || c == ')' || c == '"' {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

/// Reads the rest of a double-quoted string, resolving backslash escapes.
fn quoted_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<String, String> {
    let mut text = String::new();
    loop {
        match chars.next() {
            None => return Err("unterminated string in the filter".to_owned()),
            Some('"') => return Ok(text),
            Some('\\') => text.push(chars.next().ok_or("unterminated escape in the filter")?),
            Some(c) => text.push(c),
        }
    }
}

/// A recursive-descent parser over the tokens.
struct Parser<'a> {
    tokens: Vec<Token>,
    position: usize,
    allowed: &'a [&'a str],
}

impl Parser<'_> {
    fn peek_keyword(&self, keyword: &str) -> bool {
        matches!(self.tokens.get(self.position), Some(Token::Word(word)) if word.eq_ignore_ascii_case(keyword))
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.position).cloned();
        self.position += 1;
        token
    }

    fn or_expression(&mut self) -> Result<Filter, String> {
        let mut left = self.and_expression()?;
        while self.peek_keyword("or") {
            self.position += 1;
            left = Filter::Or(Box::new(left), Box::new(self.and_expression()?));
        }
        Ok(left)
    }

    fn and_expression(&mut self) -> Result<Filter, String> {
        let mut left = self.atom()?;
        while self.peek_keyword("and") {
            self.position += 1;
            left = Filter::And(Box::new(left), Box::new(self.atom()?));
        }
        Ok(left)
    }

    fn atom(&mut self) -> Result<Filter, String> {
        if self.peek_keyword("not") {
            self.position += 1;
            return Ok(Filter::Not(Box::new(self.parenthesized()?)));
        }
        if self.tokens.get(self.position) == Some(&Token::Open) {
            return self.parenthesized();
        }
        self.comparison()
    }

    fn parenthesized(&mut self) -> Result<Filter, String> {
        if self.next() != Some(Token::Open) {
            return Err("expected ( in the filter".to_owned());
        }
        let inner = self.or_expression()?;
        if self.next() != Some(Token::Close) {
            return Err("expected ) in the filter".to_owned());
        }
        Ok(inner)
    }

    fn comparison(&mut self) -> Result<Filter, String> {
        let Some(Token::Word(attribute)) = self.next() else {
            return Err("expected an attribute name in the filter".to_owned());
        };
        let attribute = self.resolve_attribute(&attribute)?;
        let Some(Token::Word(operator)) = self.next() else {
            return Err(format!(
                "expected an operator after {attribute} in the filter"
            ));
        };

        let operator = match operator.to_ascii_lowercase().as_str() {
            "pr" => return Ok(Filter::Present { attribute }),
            "eq" => Operator::Equal,
            "ne" => Operator::NotEqual,
            "co" => Operator::Contains,
            "sw" => Operator::StartsWith,
            "ew" => Operator::EndsWith,
            other => return Err(format!("unsupported filter operator {other}")),
        };
        let value = match self.next() {
            Some(Token::Text(text) | Token::Word(text)) => text,
            _ => return Err(format!("expected a value after {attribute} in the filter")),
        };
        Ok(Filter::Compare {
            attribute,
            operator,
            value,
        })
    }

    fn resolve_attribute(&self, name: &str) -> Result<String, String> {
        self.allowed
            .iter()
            .find(|allowed| allowed.eq_ignore_ascii_case(name))
            .map(|allowed| (*allowed).to_owned())
            .ok_or_else(|| format!("unsupported filter attribute {name}"))
    }
}

impl Filter {
    /// Returns whether the JSON resource matches. `id` compares exactly; other attributes ignore
    /// case, as SCIM defines for attributes that are not case-exact.
    pub fn matches(&self, resource: &Value) -> bool {
        match self {
            Self::And(left, right) => left.matches(resource) && right.matches(resource),
            Self::Or(left, right) => left.matches(resource) || right.matches(resource),
            Self::Not(inner) => !inner.matches(resource),
            Self::Present { attribute } => attribute_text(resource, attribute).is_some(),
            Self::Compare {
                attribute,
                operator,
                value,
            } => {
                let Some(actual) = attribute_text(resource, attribute) else {
                    return *operator == Operator::NotEqual;
                };
                let (actual, expected) = if attribute == "id" {
                    (actual, value.clone())
                } else {
                    (actual.to_lowercase(), value.to_lowercase())
                };
                match operator {
                    Operator::Equal => actual == expected,
                    Operator::NotEqual => actual != expected,
                    Operator::Contains => actual.contains(&expected),
                    Operator::StartsWith => actual.starts_with(&expected),
                    Operator::EndsWith => actual.ends_with(&expected),
                }
            }
        }
    }
}

/// Returns a top-level attribute of the resource as text, or `None` when it is absent or null.
fn attribute_text(resource: &Value, attribute: &str) -> Option<String> {
    match resource.get(attribute)? {
        Value::String(text) => Some(text.clone()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ATTRIBUTES: &[&str] = &["id", "displayName", "applicationId"];

    fn check(filter: &str, resource: &Value) -> bool {
        parse(filter, ATTRIBUTES).unwrap().matches(resource)
    }

    #[test]
    fn operators_match() {
        let group = json!({ "id": "17", "displayName": "Data Engineers" });
        assert!(check(r#"displayName eq "data engineers""#, &group));
        assert!(check(r#"displayName ne "admins""#, &group));
        assert!(check(r#"displayName co "engin""#, &group));
        assert!(check(r#"displayName sw "Data""#, &group));
        assert!(check(r#"displayName ew "neers""#, &group));
        assert!(check("id eq 17", &group));
        assert!(!check(r#"applicationId pr"#, &group));
    }

    #[test]
    fn logic_combines() {
        let group = json!({ "id": "17", "displayName": "admins" });
        assert!(check(r#"displayName eq "x" or id eq "17""#, &group));
        assert!(!check(r#"displayName eq "x" and id eq "17""#, &group));
        assert!(check(
            r#"not (displayName eq "x") and (id eq "1" or id eq "17")"#,
            &group
        ));
    }

    #[test]
    fn invalid_filters_fail() {
        assert!(parse(r#"userName eq "x""#, ATTRIBUTES).is_err());
        assert!(parse(r#"displayName gt "x""#, ATTRIBUTES).is_err());
        assert!(parse(r#"displayName eq "x"#, ATTRIBUTES).is_err());
        assert!(parse(r#"displayName eq "x" extra"#, ATTRIBUTES).is_err());
    }
}
