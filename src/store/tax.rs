//! The store's tax classes (`[tax]`): the rate a sale line is taxed at.

#[derive(Debug, Clone)]
pub struct TaxConfig {
    pub prices_include_tax: bool,
    /// (class name, rate in basis points: 1900 = 19.00 %)
    pub classes: Vec<(String, u32)>,
}

impl TaxConfig {
    pub fn rate_bp(&self, class: &str) -> Option<u32> {
        self.classes
            .iter()
            .find(|(name, _)| name == class)
            .map(|(_, rate)| *rate)
    }
}
