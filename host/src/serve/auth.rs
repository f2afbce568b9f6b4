//! Who a bearer token belongs to: the operator's and every tenant's token, compared in
//! constant time. Parsing the header and deciding what a principal may touch is
//! `admin/auth.rs`'s business.

use super::Principal;

/// The tokens of a host.
pub(super) struct Tokens {
    operator: String,
    /// (tenant, token), in tenant name order.
    tenants: Vec<(String, String)>,
}

impl Tokens {
    /// The operator's token and each tenant's.
    pub(super) fn new(operator: String, tenants: Vec<(String, String)>) -> Self {
        Tokens { operator, tenants }
    }

    /// Who owns `token`, if anyone.
    pub(super) fn principal(&self, token: &str) -> Option<Principal> {
        if constant_time_eq(token, &self.operator) {
            return Some(Principal::Operator);
        }
        self.tenants
            .iter()
            .find(|(_, t)| constant_time_eq(token, t))
            .map(|(name, _)| Principal::Tenant(name.clone()))
    }
}

/// Compares two tokens in time that depends only on their lengths.
fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_owner_and_nothing_else_matches() {
        let tokens = Tokens::new(
            "operator-token-0001".into(),
            vec![
                ("acme".into(), "acme-token-000001".into()),
                ("globex".into(), "globex-token-0001".into()),
            ],
        );
        assert_eq!(
            tokens.principal("operator-token-0001"),
            Some(Principal::Operator)
        );
        assert_eq!(
            tokens.principal("globex-token-0001"),
            Some(Principal::Tenant("globex".into()))
        );
        assert_eq!(tokens.principal("acme-token-00000"), None, "a prefix");
        assert_eq!(tokens.principal("acme-token-0000012"), None, "longer");
        assert_eq!(tokens.principal(""), None);
    }
}
