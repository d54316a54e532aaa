//! Building topics and subscription filters for one tenant ([`TopicSpace`]).

use super::{CHANGES, EPCIS, FIND, HEADS, Id, PII, PREFIX, REQUEST, RETIRED, STATUS, Scope, Topic};

/// Topic and filter builders for one tenant, so call sites never format topics by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpace {
    tenant: Id,
}

/// `+` in a filter where `None` is given: any scope.
fn scope_or_any(scope: Option<&Scope>) -> &str {
    scope.map_or("+", Scope::as_str)
}

impl TopicSpace {
    pub fn new(tenant: Id) -> TopicSpace {
        TopicSpace { tenant }
    }

    pub fn tenant(&self) -> &Id {
        &self.tenant
    }

    pub fn changes(&self, scope: &Scope, doc: &Id, writer: &Id) -> Topic {
        self.changes_about(scope, scope, doc, writer)
    }

    /// Changes `scope` publishes of `doc_scope`'s document: HQ's of a store's orders.
    pub fn changes_about(&self, scope: &Scope, doc_scope: &Scope, doc: &Id, writer: &Id) -> Topic {
        Topic::Changes {
            tenant: self.tenant.clone(),
            scope: scope.clone(),
            doc_scope: doc_scope.clone(),
            doc: doc.clone(),
            writer: writer.clone(),
        }
    }

    pub fn heads(&self, scope: &Scope, doc_scope: &Scope, doc: &Id, writer: &Id) -> Topic {
        Topic::Heads {
            tenant: self.tenant.clone(),
            scope: scope.clone(),
            doc_scope: doc_scope.clone(),
            doc: doc.clone(),
            writer: writer.clone(),
        }
    }

    pub fn status(&self, scope: &Scope, writer: &Id) -> Topic {
        Topic::Status {
            tenant: self.tenant.clone(),
            scope: scope.clone(),
            writer: writer.clone(),
        }
    }

    /// Where the retirement of `writer` of `scope` is kept (retained).
    pub fn retired(&self, scope: &Scope, writer: &Id) -> Topic {
        Topic::Retired {
            tenant: self.tenant.clone(),
            scope: scope.clone(),
            writer: writer.clone(),
        }
    }

    /// Retirements of every writer under `scope`.
    pub fn retired_filter(&self, scope: &Scope) -> String {
        let tenant = &self.tenant;
        format!("{PREFIX}/{tenant}/{scope}/{RETIRED}/+")
    }

    /// Retirements of every store's writers (HQ).
    pub fn retired_filter_all(&self) -> String {
        let tenant = &self.tenant;
        let scope = scope_or_any(None);
        format!("{PREFIX}/{tenant}/{scope}/{RETIRED}/+")
    }

    pub fn request(&self, scope: &Scope, writer: &Id) -> Topic {
        Topic::Request {
            tenant: self.tenant.clone(),
            scope: scope.clone(),
            writer: writer.clone(),
        }
    }

    pub fn response(&self, scope: &Scope, writer: &Id) -> Topic {
        Topic::Response {
            tenant: self.tenant.clone(),
            scope: scope.clone(),
            writer: writer.clone(),
        }
    }

    /// Changes of every document published under `scope` (`None`: every scope; HQ uses this).
    pub fn changes_filter(&self, scope: Option<&Scope>) -> String {
        let tenant = &self.tenant;
        let scope = scope_or_any(scope);
        format!("{PREFIX}/{tenant}/{scope}/{CHANGES}/+/+")
    }

    /// Changes `scope` publishes of documents of `doc_scope` (another scope than its own).
    /// A store reads HQ's changes of its own documents with
    /// `changes_about_filter(Some(&Scope::Hq), Some(&own))`.
    pub fn changes_about_filter(&self, scope: Option<&Scope>, doc_scope: Option<&Scope>) -> String {
        let tenant = &self.tenant;
        let scope = scope_or_any(scope);
        let doc_scope = scope_or_any(doc_scope);
        format!("{PREFIX}/{tenant}/{scope}/{CHANGES}/{doc_scope}/+/+")
    }

    /// Heads published under `scope` about documents of `doc_scope` (`None`: any).
    /// A store watching HQ's acknowledgements uses `heads_filter(Some(&Scope::Hq), Some(&own))`.
    pub fn heads_filter(&self, scope: Option<&Scope>, doc_scope: Option<&Scope>) -> String {
        let tenant = &self.tenant;
        let scope = scope_or_any(scope);
        let doc_scope = scope_or_any(doc_scope);
        format!("{PREFIX}/{tenant}/{scope}/{HEADS}/{doc_scope}/+/+")
    }

    /// Status of every writer under `scope` (`None`: every scope).
    pub fn status_filter(&self, scope: Option<&Scope>) -> String {
        let tenant = &self.tenant;
        let scope = scope_or_any(scope);
        format!("{PREFIX}/{tenant}/{scope}/{STATUS}/+")
    }

    pub fn pii(&self, scope: &Scope, store: &Id, order: &Id) -> Topic {
        Topic::Pii {
            tenant: self.tenant.clone(),
            scope: scope.clone(),
            store: store.clone(),
            order: order.clone(),
        }
    }

    /// Customer data published under `scope` about orders of `store` (`None`: any).
    /// A store lane reads HQ's with `pii_filter(Some(&Scope::Hq), Some(&own))`.
    pub fn pii_filter(&self, scope: Option<&Scope>, store: Option<&Id>) -> String {
        let tenant = &self.tenant;
        let scope = scope_or_any(scope);
        let store = store.map_or("+", Id::as_str);
        format!("{PREFIX}/{tenant}/{scope}/{PII}/{store}/+")
    }

    pub fn epcis(&self, scope: &Scope, writer: &Id) -> Topic {
        Topic::Epcis {
            tenant: self.tenant.clone(),
            scope: scope.clone(),
            writer: writer.clone(),
        }
    }

    pub fn epcis_ack(&self, store: &Id, writer: &Id) -> Topic {
        Topic::EpcisAck {
            tenant: self.tenant.clone(),
            scope: Scope::Hq,
            store: store.clone(),
            writer: writer.clone(),
        }
    }

    /// EPCIS event batches of every store's writers: HQ's subscription.
    pub fn epcis_filter(&self) -> String {
        let tenant = &self.tenant;
        format!("{PREFIX}/{tenant}/+/{EPCIS}/+")
    }

    /// HQ's acknowledgement of one writer's EPCIS events: that writer's subscription.
    pub fn epcis_ack_filter(&self, store: &Id, writer: &Id) -> String {
        self.epcis_ack(store, writer).to_string()
    }

    /// Every writer's requests: HQ's subscription.
    pub fn requests_filter(&self) -> String {
        let tenant = &self.tenant;
        format!("{PREFIX}/{tenant}/+/{REQUEST}/+")
    }

    /// Where `writer` of `scope` sends its member lookups.
    pub fn find(&self, scope: &Scope, writer: &Id) -> Topic {
        Topic::Find {
            tenant: self.tenant.clone(),
            scope: scope.clone(),
            writer: writer.clone(),
        }
    }

    /// Where HQ answers `writer`'s member lookups (that writer's subscription).
    pub fn found(&self, scope: &Scope, writer: &Id) -> Topic {
        Topic::Found {
            tenant: self.tenant.clone(),
            scope: scope.clone(),
            writer: writer.clone(),
        }
    }

    /// Every writer's member lookups: HQ's subscription (shared among its instances).
    pub fn find_filter(&self) -> String {
        let tenant = &self.tenant;
        format!("{PREFIX}/{tenant}/+/{FIND}/+")
    }
}
