//! Where a value is written in a Slurmfile, for errors found after the file was read (an input that
//! does not exist, an item that is not an object, a job named in `after` that is not defined): the
//! error then names the file, line and column as a parse error does.

use std::ops::Range;
use std::path::Path;

use toml::de::{DeTable, DeValue};

use super::ConfigError;

/// A place in the Slurmfile: the keys from the top (`["jobs", "sweep", "inputs"]`) and, for an array,
/// the element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place<'a> {
    pub keys: Vec<&'a str>,
    pub index: Option<usize>,
}

impl<'a> Place<'a> {
    pub fn new(keys: &[&'a str]) -> Self {
        Place {
            keys: keys.to_vec(),
            index: None,
        }
    }

    pub fn at(mut self, index: usize) -> Self {
        self.index = Some(index);
        self
    }
}

/// The byte range of the first of `places` written in `text`.
pub fn span(text: &str, places: &[Place<'_>]) -> Option<Range<usize>> {
    let root = DeTable::parse(text).ok()?;
    places.iter().find_map(|place| {
        let mut table = root.get_ref();
        let (last, parents) = place.keys.split_last()?;
        for key in parents {
            match lookup(table, key)?.get_ref() {
                DeValue::Table(inner) => table = inner,
                _ => return None,
            }
        }
        let value = lookup(table, last)?;
        match (place.index, value.get_ref()) {
            (None, _) => Some(value.span()),
            (Some(i), DeValue::Array(items)) => items.get(i).map(|item| item.span()),
            (Some(_), _) => Some(value.span()),
        }
    })
}

fn lookup<'t, 'i>(table: &'t DeTable<'i>, key: &str) -> Option<&'t toml::Spanned<DeValue<'i>>> {
    table
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == key)
        .map(|(_, v)| v)
}

/// An error at the first of `places` found in the file at `path` (read again: the error is rare, and
/// the file is small), or at the file alone when none is written there.
pub fn error_at(path: &Path, places: &[Place<'_>], message: String) -> ConfigError {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    match span(&text, places) {
        Some(range) => super::located(path, &text, range, message),
        None => ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_and_array_elements() {
        let text = "[job]\nname = \"x\"\n\n[jobs.sweep]\ninputs = [\n  \"a\",\n  \"b\",\n]\n";
        let range = span(text, &[Place::new(&["jobs", "sweep", "inputs"]).at(1)]).unwrap();
        assert_eq!(&text[range], "\"b\"");
        let range = span(
            text,
            &[
                Place::new(&["jobs", "train", "inputs"]),
                Place::new(&["job", "name"]),
            ],
        )
        .unwrap();
        assert_eq!(&text[range], "\"x\"");
    }
}
