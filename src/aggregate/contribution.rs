//! The contribution lifecycle of every object but Events: an object is
//! decoded into a compact [`Contribution`] whose series references are
//! taken ([`Aggregate::prepare`]); the store (`relist`) then makes it
//! visible, retires it and drops its references through [`Indexes`], where
//! each index applies its part: reports their counts, policies and
//! Namespaces their entries.

use super::Aggregate;
use super::namespaces::Namespaces;
use super::policy_modes::Policies;
use super::relist::{Index, Store};
use super::reports::{ReportPart, Reports};
use super::series::Strings;
use super::stats::Stats;
use super::uid::Key;
use crate::decode::DecodeError;
use crate::kind::Kind;
use crate::namespace::{self, NamespaceInfo};
use crate::policy::{self, Policy};
use crate::source::{Body, Origin, SourceObject};
use string_interner::DefaultSymbol as Sym;

/// Identity of an object within its origin: 32 bytes, and no heap for the
/// name of a report named after its resource's uid, as Kyverno names them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct ObjectId {
    pub(super) kind: Kind,
    namespace: Sym,
    name: Key,
}

/// What one object contributes. Two levels rather than one enum of four:
/// the report's boxes then hold the niche that tells the two apart, and a
/// contribution takes 56 bytes instead of 64.
#[derive(Debug)]
pub(super) enum Contribution {
    /// A report (see [`ReportPart`]).
    Report(ReportPart),
    /// Any other object.
    Other(Other),
}

/// What an object other than a report contributes.
#[derive(Debug)]
pub(super) enum Other {
    /// A policy.
    Policy(Box<Policy>),
    /// A Namespace's labels.
    Namespace(Box<NamespaceInfo>),
    /// The object could not be decoded; kept so it is logged once and its
    /// old contribution stays removed.
    Invalid,
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
                None => Ok(Some(Contribution::Report(self.reports.contribution(
                    report,
                    namespace,
                    &mut self.strings,
                )))),
            },
            Body::Object(raw) if object.kind == Kind::Namespace => namespace::decode(raw.raw.get())
                .map(|n| Some(Contribution::Other(Other::Namespace(Box::new(n))))),
            Body::Object(raw) => policy::decode(object.kind, raw.raw.get())
                .map(|p| Some(Contribution::Other(Other::Policy(Box::new(p))))),
        };
        let contribution = match decoded {
            Ok(c) => c,
            Err(err) => {
                self.invalid(origin, object, &id, &err);
                Some(Contribution::Other(Other::Invalid))
            }
        };
        (id, contribution)
    }

    pub(super) fn object_id(&mut self, object: &SourceObject) -> ObjectId {
        let (namespace, name) = object.id();
        ObjectId {
            kind: object.kind,
            namespace: self.strings.intern(namespace),
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
            .objects
            .get(origin, id)
            .is_some_and(|c| matches!(c, Contribution::Other(Other::Invalid)));
        self.count_invalid(was_invalid, origin, object, err);
    }

    /// The object store, and apart from it the indexes its contributions
    /// apply to.
    pub(super) fn split(&mut self) -> (&mut Store<ObjectId, Contribution>, Indexes<'_>) {
        let index = Indexes {
            reports: &mut self.reports,
            policies: &mut self.policies,
            namespaces: &mut self.namespaces,
            stats: &mut self.stats,
            strings: &self.strings,
        };
        (&mut self.objects, index)
    }
}

/// The indexes objects other than Events contribute to, borrowed apart
/// from the [`Store`] that holds the contributions.
pub(super) struct Indexes<'a> {
    reports: &'a mut Reports,
    policies: &'a mut Policies,
    namespaces: &'a mut Namespaces,
    stats: &'a mut Stats,
    /// The shared strings, which releasing a series reads.
    strings: &'a Strings,
}

impl Index<ObjectId, Contribution> for Indexes<'_> {
    fn activate(&mut self, new: &mut Contribution, _old: Option<&Contribution>) {
        match new {
            Contribution::Report(r) => self.reports.add(r),
            Contribution::Other(Other::Policy(p)) => self.policies.apply(p),
            Contribution::Other(Other::Namespace(n)) => self.namespaces.apply(n),
            Contribution::Other(Other::Invalid) => {}
        }
    }

    fn deactivate(&mut self, old: Contribution) {
        match &old {
            Contribution::Report(r) => self.reports.remove(r),
            Contribution::Other(Other::Policy(p)) => self.policies.delete(p),
            Contribution::Other(Other::Namespace(n)) => self.namespaces.delete(n),
            Contribution::Other(Other::Invalid) => {}
        }
        self.release(old);
    }

    fn release(&mut self, c: Contribution) {
        if let Contribution::Report(r) = c {
            self.reports.release(self.strings, r);
        }
    }

    fn counted(&mut self, id: &ObjectId, delta: i64) {
        self.stats.count_object(id.kind, delta);
    }
}
