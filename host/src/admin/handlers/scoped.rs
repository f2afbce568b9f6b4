//! [`Scoped`]: the host as the caller of one admin request sees it.

use std::sync::{Arc, Mutex};

use super::AnonymousLog;
use crate::serve::PipelineId;
use crate::serve::control::{
    ControlError, HostControl, PipelineView, Principal, Redactor, ShadowView, TenantView,
    VersionView,
};

/// The host as the caller of one admin request sees it: a tenant (or a caller not yet
/// authenticated) gets every view and refusal with host paths cut ([`Redactor`]), the
/// operator gets them whole. The caller is whoever [`HostControl::authenticate`] found
/// through it, so each request gets one of its own (a clone of [`super::Admin`]) and
/// authenticates through it; were two different principals ever found through one, both
/// would get the cut text. It also carries the API's count of refusals of unauthenticated
/// requests, for the request's log line.
pub(super) struct Scoped {
    host: Arc<dyn HostControl>,
    caller: Mutex<Caller>,
    refusals: Arc<Mutex<AnonymousLog>>,
}

/// Who authenticated through a [`Scoped`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Caller {
    Nobody,
    Operator,
    /// A tenant, or more than one principal.
    Tenant,
}

impl Scoped {
    /// `host`, for one caller not known yet; `refusals` is the API's count of refusals of
    /// unauthenticated requests.
    pub(super) fn new(host: Arc<dyn HostControl>, refusals: Arc<Mutex<AnonymousLog>>) -> Self {
        Scoped {
            host,
            caller: Mutex::new(Caller::Nobody),
            refusals,
        }
    }

    /// The API's count of refusals of unauthenticated requests.
    pub(super) fn refusals(&self) -> &Arc<Mutex<AnonymousLog>> {
        &self.refusals
    }

    /// The redactor to apply, unless the caller is the operator.
    fn redactor(&self) -> Option<Redactor> {
        let caller = *self.caller.lock().unwrap_or_else(|p| p.into_inner());
        (caller != Caller::Operator).then(|| self.host.redactor())
    }

    fn cut<T>(
        &self,
        result: Result<T, ControlError>,
        view: impl FnOnce(&Redactor, T) -> T,
    ) -> Result<T, ControlError> {
        match self.redactor() {
            None => result,
            Some(r) => result.map(|v| view(&r, v)).map_err(|e| r.error(e)),
        }
    }
}

impl HostControl for Scoped {
    fn authenticate(&self, token: &str) -> Option<Principal> {
        let principal = self.host.authenticate(token)?;
        let found = match principal {
            Principal::Operator => Caller::Operator,
            Principal::Tenant(_) => Caller::Tenant,
        };
        let mut caller = self.caller.lock().unwrap_or_else(|p| p.into_inner());
        *caller = match *caller {
            Caller::Nobody => found,
            same if same == found => same,
            _ => Caller::Tenant,
        };
        Some(principal)
    }
    fn tenants(&self) -> Vec<TenantView> {
        self.host.tenants()
    }
    fn pipelines(&self, tenant: &str) -> Result<Vec<PipelineView>, ControlError> {
        self.cut(self.host.pipelines(tenant), |r, views| {
            views.into_iter().map(|v| r.pipeline(v)).collect()
        })
    }
    fn deploy(&self, id: &PipelineId, wasm: Vec<u8>) -> Result<VersionView, ControlError> {
        self.cut(self.host.deploy(id, wasm), Redactor::version)
    }
    fn deploy_changing_outputs(
        &self,
        id: &PipelineId,
        wasm: Vec<u8>,
    ) -> Result<VersionView, ControlError> {
        self.cut(
            self.host.deploy_changing_outputs(id, wasm),
            Redactor::version,
        )
    }
    fn rollback(&self, id: &PipelineId) -> Result<VersionView, ControlError> {
        self.cut(self.host.rollback(id), Redactor::version)
    }
    fn pause(&self, id: &PipelineId) -> Result<PipelineView, ControlError> {
        self.cut(self.host.pause(id), Redactor::pipeline)
    }
    fn resume(&self, id: &PipelineId) -> Result<PipelineView, ControlError> {
        self.cut(self.host.resume(id), Redactor::pipeline)
    }
    fn metrics(&self) -> String {
        self.host.metrics()
    }
    // A shadow's report holds the candidate's own errors (the tenant's text) and no host
    // path: only refusals are cut.
    fn deploy_shadow(
        &self,
        id: &PipelineId,
        wasm: Vec<u8>,
        options: crate::serve::control::ShadowOptions,
    ) -> Result<ShadowView, ControlError> {
        self.cut(self.host.deploy_shadow(id, wasm, options), |_, v| v)
    }
    fn schema(&self, id: &PipelineId) -> Result<crate::serve::SchemaView, ControlError> {
        self.cut(self.host.schema(id), |_, v| v)
    }
    fn shadow(&self, id: &PipelineId) -> Result<ShadowView, ControlError> {
        self.cut(self.host.shadow(id), |_, v| v)
    }
    fn promote(&self, id: &PipelineId) -> Result<VersionView, ControlError> {
        self.cut(self.host.promote(id), Redactor::version)
    }
    fn discard(&self, id: &PipelineId) -> Result<ShadowView, ControlError> {
        self.cut(self.host.discard(id), |_, v| v)
    }
    fn activity(
        &self,
        id: &PipelineId,
        since: &crate::console::Since,
    ) -> Result<crate::serve::control::Activity, ControlError> {
        self.cut(self.host.activity(id, since), |r, mut a| {
            a.pipeline = r.pipeline(a.pipeline);
            a
        })
    }
    fn latest_sample(&self, id: &PipelineId) -> Option<crate::console::Sample> {
        self.host.latest_sample(id)
    }
    fn controls(&self) -> bool {
        self.host.controls()
    }
    fn console(&self) -> bool {
        self.host.console()
    }
    fn redactor(&self) -> Redactor {
        self.host.redactor()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::control::{PipelineState, RejectedView};

    /// A host with one failed pipeline, whose reasons hold host paths.
    struct PathHost;

    impl HostControl for PathHost {
        fn authenticate(&self, token: &str) -> Option<Principal> {
            match token {
                "op" => Some(Principal::Operator),
                "acme" => Some(Principal::Tenant("acme".into())),
                _ => None,
            }
        }
        fn tenants(&self) -> Vec<TenantView> {
            Vec::new()
        }
        fn pipelines(&self, tenant: &str) -> Result<Vec<PipelineView>, ControlError> {
            Ok(vec![PipelineView {
                tenant: tenant.into(),
                name: "ticks".into(),
                state: PipelineState::Failed,
                reason: Some("writing /srv/out/ticks.jsonl: No space left on device".into()),
                versions: Vec::new(),
                last_rejected: Some(RejectedView {
                    reason: "needs input field `x`; Only the operator can fix this, in /etc/weir/ticks.toml: add it".into(),
                    at: String::new(),
                    origin: "file".into(),
                    file: Some("/var/lib/weir/plugins/acme/ticks.wasm".into()),
                    sha256: String::new(),
                }),
                last_plugin_error: None,
                sink_retrying: None,
                counters: crate::counters::Counters { events_read: 0, rows_written: 0, plugin_errors: 0, ..Default::default() },
            }])
        }
        fn deploy(&self, _: &PipelineId, _: Vec<u8>) -> Result<VersionView, ControlError> {
            Err(ControlError::Conflict(
                "pipeline acme/ticks has failed (writing /srv/out/ticks.jsonl: No space left on device)".into(),
            ))
        }
        fn rollback(&self, _: &PipelineId) -> Result<VersionView, ControlError> {
            unimplemented!()
        }
        fn pause(&self, _: &PipelineId) -> Result<PipelineView, ControlError> {
            unimplemented!()
        }
        fn resume(&self, _: &PipelineId) -> Result<PipelineView, ControlError> {
            unimplemented!()
        }
        fn metrics(&self) -> String {
            String::new()
        }
    }

    #[test]
    fn a_tenant_sees_no_host_path_and_the_operator_sees_them_all() {
        let host: Arc<dyn HostControl> = Arc::new(PathHost);
        let id = PipelineId::new("acme", "ticks");

        let tenant = Scoped::new(host.clone(), Arc::default());
        assert!(tenant.authenticate("acme").is_some());
        let v = &tenant.pipelines("acme").unwrap()[0];
        assert_eq!(
            v.reason.as_deref(),
            Some("writing ticks.jsonl: No space left on device")
        );
        let r = v.last_rejected.as_ref().unwrap();
        assert!(r.reason.ends_with("in ticks.toml: add it"), "{}", r.reason);
        assert_eq!(r.file.as_deref(), Some("acme/ticks.wasm"));
        let ControlError::Conflict(why) = tenant.deploy(&id, Vec::new()).unwrap_err() else {
            panic!("a conflict")
        };
        assert!(!why.contains("/srv"), "{why}");

        let operator = Scoped::new(host.clone(), Arc::default());
        assert!(operator.authenticate("op").is_some());
        assert_eq!(
            operator.pipelines("acme").unwrap(),
            host.pipelines("acme").unwrap()
        );
        assert_eq!(
            operator.deploy(&id, Vec::new()),
            host.deploy(&id, Vec::new())
        );

        // Nobody authenticated, or two principals through one: cut.
        let nobody = Scoped::new(host.clone(), Arc::default());
        assert!(nobody.authenticate("wrong").is_none());
        assert_ne!(
            nobody.pipelines("acme").unwrap(),
            host.pipelines("acme").unwrap()
        );
        let both = Scoped::new(host.clone(), Arc::default());
        both.authenticate("op");
        both.authenticate("acme");
        assert_ne!(
            both.pipelines("acme").unwrap(),
            host.pipelines("acme").unwrap()
        );
    }
}
