//! [`PipelineId`]: the one name of a hosted pipeline, its tenant and pipeline names together.
//! Every part of `serve/` and `admin/` that keys, routes, labels or logs a pipeline uses it.

use std::fmt;
use std::sync::Arc;

use crate::plugin::Owner;

/// A pipeline of a tenant, e.g. `acme/stocks`.
///
/// Ordered by tenant, then pipeline (the order the admin API lists them in); cheap to clone
/// (two shared strings). Its [`Display`](fmt::Display) is `tenant/pipeline`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PipelineId {
    /// Tenant name.
    pub tenant: Arc<str>,
    /// Pipeline name, unique within its tenant.
    pub pipeline: Arc<str>,
}

impl PipelineId {
    /// The pipeline `pipeline` of tenant `tenant`.
    pub fn new(tenant: impl Into<Arc<str>>, pipeline: impl Into<Arc<str>>) -> Self {
        PipelineId {
            tenant: tenant.into(),
            pipeline: pipeline.into(),
        }
    }

    /// Whose plugin instance runs for this pipeline, for its log lines.
    pub fn owner(&self) -> Owner {
        Owner {
            tenant: self.tenant.to_string(),
            pipeline: self.pipeline.to_string(),
        }
    }
}

impl fmt::Display for PipelineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tenant, self.pipeline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_as_tenant_slash_pipeline_and_orders_by_tenant_first() {
        let a = PipelineId::new("acme", "zeta");
        let b = PipelineId::new("acme2", "alpha");
        let c = PipelineId::new("acme", "alpha");
        assert_eq!(a.to_string(), "acme/zeta");
        let mut all = vec![a.clone(), b.clone(), c.clone()];
        all.sort();
        assert_eq!(all, vec![c, a, b]);
    }

    #[test]
    fn owner_carries_both_names() {
        let owner = PipelineId::new("acme", "stocks").owner();
        assert_eq!(
            (owner.tenant.as_str(), owner.pipeline.as_str()),
            ("acme", "stocks")
        );
    }
}
