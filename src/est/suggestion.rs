//! "Did you mean ...?" by edit distance.

/// The candidate closest to `word`, if it is close enough to be a likely typo.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word_lower = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(&word_lower, &c.to_lowercase()), c))
        // A third of the word may be wrong, but at least one edit is always allowed.
        .filter(|(distance, c)| *distance <= (c.chars().count().max(word.chars().count()) / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::suggest;

    #[test]
    fn suggests_close_words_only() {
        let keys = ["hidden_units", "n_classes", "activation"];
        assert_eq!(suggest("hiden_units", keys), Some("hidden_units"));
        assert_eq!(suggest("nclasses", keys), Some("n_classes"));
        assert_eq!(suggest("Activation", keys), Some("activation"));
        assert_eq!(suggest("optimizer", keys), None);
        assert_eq!(suggest("x", ["y"]), Some("y"));
        assert_eq!(suggest("ab", ["xy"]), None);
    }
}
