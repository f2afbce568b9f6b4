//! [`Params`]: the pipeline's `[plugin.params]`, as strings, with typed
//! accessors whose errors name the parameter.

use std::str::FromStr;

use crate::{Error, Result};

/// The pipeline's `[plugin.params]`: string names to string values.
///
/// ```
/// use weir_guest::Params;
///
/// let params = Params::from_pairs([("field", "price"), ("decimals", "2"), ("fields", "a, b,,c")]);
/// assert_eq!(params.required("field")?, "price");
/// assert_eq!(params.parse_or("decimals", 0u32)?, 2);
/// assert_eq!(params.parse_or("window", 10u32)?, 10);
/// assert_eq!(params.list("fields"), Some(vec!["a".into(), "b".into(), "c".into()]));
/// assert!(params.required("missing").is_err());
/// # Ok::<(), weir_guest::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// No parameters.
    pub fn new() -> Self {
        Params::default()
    }

    /// Parameters from `(name, value)` pairs; when a name repeats, the last
    /// value wins.
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        Params {
            pairs: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The raw value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `name`, trimmed; an error if it is absent or blank.
    pub fn required(&self, name: &str) -> Result<&str> {
        match self.get(name).map(str::trim) {
            Some(value) if !value.is_empty() => Ok(value),
            Some(_) => Err(Error::new(format!("parameter `{name}` is empty"))
                .with_hint(format!("give `{name}` a value under [plugin.params]"))),
            None => Err(
                Error::new(format!("missing required parameter `{name}`")).with_hint(format!(
                    "add it under [plugin.params], e.g. {name} = \"...\""
                )),
            ),
        }
    }

    /// `name` parsed as `T` (after trimming), or `default` when it is absent.
    /// A value that does not parse is an error naming the parameter and value.
    pub fn parse_or<T: FromStr>(&self, name: &str, default: T) -> Result<T> {
        Ok(self.parse(name)?.unwrap_or(default))
    }

    /// `name` parsed as `T` (after trimming), or `None` when it is absent.
    /// A value that does not parse is an error naming the parameter and value.
    pub fn parse<T: FromStr>(&self, name: &str) -> Result<Option<T>> {
        let Some(raw) = self.get(name) else {
            return Ok(None);
        };
        raw.trim().parse().map(Some).map_err(|_| {
            let ty = std::any::type_name::<T>();
            Error::new(format!("parameter `{name}` = {raw:?} is not a valid {ty}"))
                .with_hint(format!("set `{name}` under [plugin.params] to a {ty}"))
        })
    }

    /// `name` split on commas, each item trimmed, empty items dropped;
    /// `None` when it is absent.
    pub fn list(&self, name: &str) -> Option<Vec<String>> {
        self.get(name).map(|raw| {
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
    }

    /// All `(name, value)` pairs, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_errors_name_the_param_and_hint_where_to_put_it() {
        let params = Params::from_pairs([("blank", "  ")]);
        let missing = params.required("field").unwrap_err();
        assert_eq!(missing.message, "missing required parameter `field`");
        assert!(
            missing
                .hint
                .as_deref()
                .is_some_and(|h| h.contains("[plugin.params]"))
        );
        let blank = params.required("blank").unwrap_err();
        assert_eq!(blank.message, "parameter `blank` is empty");
    }

    #[test]
    fn parse_errors_name_the_param_and_value() {
        let params = Params::from_pairs([("decimals", "two")]);
        let err = params.parse_or("decimals", 2u32).unwrap_err();
        assert_eq!(
            err.message,
            "parameter `decimals` = \"two\" is not a valid u32"
        );
        assert_eq!(Params::new().parse::<u32>("decimals"), Ok(None));
        assert_eq!(
            Params::from_pairs([("d", " 7 ")]).parse::<u32>("d"),
            Ok(Some(7))
        );
    }

    #[test]
    fn last_value_wins_and_iter_keeps_order() {
        let params = Params::from_pairs([("a", "1"), ("b", "2"), ("a", "3")]);
        assert_eq!(params.get("a"), Some("3"));
        let all: Vec<_> = params.iter().collect();
        assert_eq!(all, [("a", "1"), ("b", "2"), ("a", "3")]);
    }

    #[test]
    fn list_of_only_commas_is_empty() {
        let params = Params::from_pairs([("fields", " , ,")]);
        assert_eq!(params.list("fields"), Some(vec![]));
        assert_eq!(params.list("other"), None);
    }
}
