//! The contribution lifecycle of every object but Events: an object is
//! decoded into a compact [`Contribution`] whose series references are
//! taken ([`Aggregate::prepare`]), made visible
//! ([`Aggregate::activate`]), retired ([`Aggregate::deactivate`]), and its
//! references dropped ([`Aggregate::release`]). Each index applies its part:
//! reports their counts, policies and Namespaces their entries.

use super::Aggregate;
use super::reports::freshness::{FreshId, Stamp};
use super::reports::tallies::ControlDelta;
use super::reports::worklist::FailingEntry;
use super::series::SeriesId;
use super::uid::Key;
use crate::decode::DecodeError;
use crate::kind::Kind;
use crate::namespace::{self, NamespaceInfo};
use crate::policy::{self, Policy};
use crate::source::{Body, Origin, SourceObject};
use string_interner::DefaultSymbol as Sym;
use tracing::debug;

/// Identity of an object within its origin: 32 bytes, and no heap for the
/// name of a report named after its resource's uid, as Kyverno names them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct ObjectId {
    pub(super) kind: Kind,
    namespace: Sym,
    name: Key,
}

/// What one object contributes.
#[derive(Debug)]
pub(super) enum Contribution {
    /// A report: its series counts and its per-control resource tallies;
    /// its failing entries only when kept (`summary --failing`), else empty.
    /// With `--compat policy-reporter`, `series` goes on with its counts in
    /// the Policy Reporter table from index `policy_reporter`; its last
    /// `fresh` entries are one (freshness entry, refresh time) pair per
    /// source the report has results from. (One list, not three, and a
    /// 16-bit count keep a contribution at 56 bytes: see
    /// [`Contribution::parts`].)
    Report {
        series: Box<[(SeriesId, u32)]>,
        controls: Box<[ControlDelta]>,
        failing: Box<[FailingEntry]>,
        policy_reporter: u32,
        fresh: u16,
    },
    /// A policy.
    Policy(Box<Policy>),
    /// A Namespace's labels.
    Namespace(Box<NamespaceInfo>),
    /// The object could not be decoded; kept so it is logged once and its
    /// old contribution stays removed.
    Invalid,
}

/// A report's `series` list split into its own series, Policy Reporter's,
/// and its freshness pairs.
pub(super) type Parts<'a> = (
    &'a [(SeriesId, u32)],
    &'a [(SeriesId, u32)],
    &'a [(FreshId, Stamp)],
);

impl Contribution {
    /// The parts of a report's list; all empty for other contributions.
    pub(super) fn parts(&self) -> Parts<'_> {
        match self {
            Contribution::Report {
                series,
                policy_reporter,
                fresh,
                ..
            } => {
                let (rest, fresh) = series.split_at(series.len() - usize::from(*fresh));
                let (own, compat) = rest.split_at(*policy_reporter as usize);
                (own, compat, fresh)
            }
            _ => (&[], &[], &[]),
        }
    }
}

impl Aggregate {
    /// Decode an object other than an Event into a contribution whose
    /// series references are taken. `None` for objects that contribute
    /// nothing and need no record (out of scope). Logs and counts an object
    /// when it newly becomes invalid.
    pub(super) fn prepare(
        &mut self,
        origin: &Origin,
        object: &SourceObject,
    ) -> (ObjectId, Option<Contribution>) {
        let id = self.object_id(object);
        let (namespace, name) = object.id();
        // Namespace scoping of everything that belongs to a
        // namespace: reports (results, controls, namespace modes) and
        // namespaced policies by their own namespace, Namespaces by their
        // name; admissions by the admitted resource's, once decoded (in
        // `prepare_event`). What is out of scope contributes nothing
        // and is not held. Cluster-scoped policies belong to no namespace.
        let in_scope = match object.kind {
            Kind::Namespace => self.namespace_filter.admits(name),
            k if k.is_report() || k.namespaced() => self.namespace_filter.admits(namespace),
            _ => true,
        };
        if !in_scope {
            return (id, None);
        }
        let decoded = match &object.body {
            Body::Report(report) => match report.error() {
                Some(err) => Err(err.clone()),
                None => Ok(Some(self.report_contribution(report, namespace))),
            },
            Body::Object(raw) if object.kind == Kind::Namespace => {
                namespace::decode(raw.raw.get()).map(|n| Some(Contribution::Namespace(Box::new(n))))
            }
            Body::Object(raw) => policy::decode(object.kind, raw.raw.get())
                .map(|p| Some(Contribution::Policy(Box::new(p)))),
        };
        let contribution = match decoded {
            Ok(c) => c,
            Err(err) => {
                self.invalid(origin, object, &id, &err);
                Some(Contribution::Invalid)
            }
        };
        (id, contribution)
    }

    pub(super) fn object_id(&mut self, object: &SourceObject) -> ObjectId {
        let (namespace, name) = object.id();
        ObjectId {
            kind: object.kind,
            namespace: self.series.intern(namespace),
            name: Key::new(name),
        }
    }

    fn invalid(
        &mut self,
        origin: &Origin,
        object: &SourceObject,
        id: &ObjectId,
        err: &DecodeError,
    ) {
        let was_invalid = self
            .origins
            .get(origin)
            .and_then(|m| m.get(id))
            .is_some_and(|c| matches!(c, Contribution::Invalid));
        if was_invalid {
            debug!(kind = %object.kind, name = %object.id().1, "object still invalid");
            return;
        }
        self.count_invalid(origin, object, err);
    }

    /// Make a contribution visible (the one it replaces is deactivated
    /// after).
    pub(super) fn activate(&mut self, new: &Contribution) {
        self.count_report(new, true);
        match new {
            Contribution::Policy(p) => self.policies.apply(p),
            Contribution::Namespace(n) => self.namespaces.apply(n),
            Contribution::Report { .. } | Contribution::Invalid => {}
        }
    }

    /// Remove a visible contribution and release what it holds.
    pub(super) fn deactivate(&mut self, old: Contribution) {
        self.count_report(&old, false);
        match &old {
            Contribution::Policy(p) => self.policies.delete(p),
            Contribution::Namespace(n) => self.namespaces.delete(n),
            Contribution::Report { .. } | Contribution::Invalid => {}
        }
        self.release(old);
    }

    /// Drop the series references of a contribution that is not visible.
    pub(super) fn release(&mut self, c: Contribution) {
        let (series, compat, fresh) = c.parts();
        for (s, _) in series {
            self.series.release(*s);
        }
        if let Some(table) = &mut self.policy_reporter {
            for (s, _) in compat {
                table.release(*s);
            }
        }
        for (id, _) in fresh {
            self.freshness.release(*id);
        }
    }
}
