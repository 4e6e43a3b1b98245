//! Admission Events: what counting needs of each live Event, and nothing
//! more.
//!
//! Kyverno ≥ 1.12 writes one Event per admission, and the API server keeps
//! each for its `--event-ttl` (1 h by default), so a busy admission path
//! holds tens of thousands of them. Counting needs, per Event, its uid (to
//! tell an update from a new Event), the count already added, and the
//! counter it adds to, interned once for all Events. That is one 40-byte
//! slot of a hash table: about 54 bytes per live Event with the table's
//! spare room (`bench/tests/heap.rs`), against 268 bytes as a general
//! object (its namespace and name, a general contribution, an
//! insertion-ordered map entry).
//!
//! This module owns the admission counters ([`Admissions`]), the live Events
//! of each origin and of each relist in progress ([`EventStore`], the relist
//! store over plain hash tables, so a relist swaps Events in atomically as
//! it does other objects), what an Event adds ([`Counted`], applied through
//! [`EventIndex`]), and the readers.
//!
//! Serves `policyreport_admission_blocked_total` and
//! `policyreport_admission_audit_failures_total`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use string_interner::DefaultSymbol as Sym;

use super::relist::{Index, Store};
use super::uid::Key;
use super::{Aggregate, Map};
use crate::decode::DecodeError;
use crate::event;
use crate::exposition::{Family, Samples, Type, always};
use crate::kind::Kind;
use crate::source::{Body, Origin, SourceObject};

/// Identity of an admission counter: blocked, or let through by Audit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct AdmissionKey {
    namespace: Sym,
    policy: Sym,
    rule: Sym,
    kind: Sym,
    outcome: Outcome,
}

/// What an admission counter counts.
///
/// One rule for every policy kind: a failure is blocked when the failing
/// policy itself enforces, else an audit failure. For ClusterPolicy and
/// Policy, the Event's action says so. For the CEL kinds it may not
/// ([`event::Admission::decided_by_policy`]), so their blocked Events are
/// decided by the policy's `validationActions` when the Event is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Outcome {
    /// The request was refused.
    Blocked,
    /// Audit let the request through.
    Audit,
    /// A CEL policy's blocked Event counted before the policy was seen (the
    /// Events listed before the policies at start, or the policy gone):
    /// decided when read, by the policy's actions then, and taken as blocked
    /// while the policy is still unknown.
    Undecided,
}

/// An Event's identity: its uid, which the API server assigns and never
/// reuses. An Event recreated under the same name is another Event.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum EventId {
    /// Its uid: 16 bytes when in the form API servers assign.
    Uid(Key),
    /// An Event without a uid (hand-written files): `namespace/name`.
    Name(Box<str>),
}

impl EventId {
    /// The identity of the Event with this metadata.
    pub fn of(meta: &ObjectMeta) -> EventId {
        match meta.uid.as_deref().filter(|u| !u.is_empty()) {
            Some(uid) => EventId::Uid(Key::new(uid)),
            None => EventId::Name(
                format!(
                    "{}/{}",
                    meta.namespace.as_deref().unwrap_or(""),
                    meta.name.as_deref().unwrap_or("")
                )
                .into(),
            ),
        }
    }
}

/// What one live Event has added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Counted {
    /// Before activation, the Event's count; after, the highest count
    /// added. Carried through updates that are invalid or not admissions,
    /// so a flapping Event is never counted twice.
    pub counted: u64,
    /// Its counter in [`Admissions`], or [`Counted::NO_COUNTER`].
    pub counter: u32,
    /// It could not be decoded (it is logged once, not at each update).
    pub invalid: bool,
}

impl Counted {
    /// Not an admission counted here (another kind of Event, or out of
    /// scope).
    pub const NO_COUNTER: u32 = u32::MAX;

    /// An Event that adds to no counter.
    pub const NOTHING: Counted = Counted {
        counted: 0,
        counter: Self::NO_COUNTER,
        invalid: false,
    };

    /// An Event that could not be decoded.
    pub const INVALID: Counted = Counted {
        invalid: true,
        ..Self::NOTHING
    };

    /// Make this (new) state of an Event visible, given its previous one:
    /// counters only grow, so only an increase over what was added is
    /// added, and the highest count added is remembered.
    fn activate(&mut self, old: Option<Counted>, admissions: &mut Admissions) {
        let seen = old.map_or(0, |o| o.counted);
        if self.counter != Self::NO_COUNTER && self.counted > seen {
            admissions.add(self.counter, self.counted - seen);
        } else {
            self.counted = seen;
        }
    }
}

/// The admission counters. A counter keeps its id for good: counters never
/// go down, so they are never removed.
#[derive(Debug, Default)]
pub(super) struct Admissions {
    ids: Map<AdmissionKey, u32>,
    counters: Vec<(AdmissionKey, u64)>,
}

impl Admissions {
    /// The id of a counter, created at 0 when new.
    pub fn id(&mut self, key: AdmissionKey) -> u32 {
        let next = self.counters.len() as u32;
        *self.ids.entry(key).or_insert_with(|| {
            self.counters.push((key, 0));
            next
        })
    }

    fn add(&mut self, id: u32, n: u64) {
        self.counters[id as usize].1 += n;
    }

    /// Every counter above 0 (an id taken by an Event that was never
    /// activated, say replaced within a relist, has counted nothing).
    pub fn iter(&self) -> impl Iterator<Item = (&AdmissionKey, u64)> {
        self.counters
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| (k, *n))
    }
}

/// The live Events of each origin and of each relist in progress: a relist
/// [`Store`] whose tables are plain hash maps of 40-byte slots. Activation
/// order cannot change a counter (what an Event adds is a sum), so Events
/// need no insertion-ordered table, which would hold each slot's 8-byte
/// hash beside it and an 8-byte position in its index: 57 bytes per Event
/// before spare room, against 41 (the slot and its control byte).
pub(super) type EventStore = Store<EventId, Counted, Map<EventId, Counted>>;

/// What Events apply to: the admission counters, and the count of Events
/// held, added to the self-observation counters once per change or relist.
pub(super) struct EventIndex<'a> {
    admissions: &'a mut Admissions,
    held: i64,
}

impl Index<EventId, Counted> for EventIndex<'_> {
    fn activate(&mut self, new: &mut Counted, old: Option<&Counted>) {
        new.activate(old.copied(), self.admissions);
    }

    /// What an Event added stays added: counters only grow.
    fn deactivate(&mut self, _old: Counted) {}

    fn release(&mut self, _c: Counted) {}

    fn counted(&mut self, _id: &EventId, delta: i64) {
        self.held += delta;
    }
}

impl Aggregate {
    /// Run `f` on the Event store and, apart from it, the index its Events
    /// apply to; then count the Events it added or removed.
    fn with_events(&mut self, f: impl FnOnce(&mut EventStore, &mut EventIndex<'_>)) {
        let mut index = EventIndex {
            admissions: &mut self.admissions,
            held: 0,
        };
        f(&mut self.events, &mut index);
        if index.held != 0 {
            self.stats.count_object(Kind::Event, index.held);
        }
    }

    /// An Event was created or updated.
    pub(super) fn apply_admission(&mut self, origin: Origin, object: &SourceObject) {
        let (id, new) = self.prepare_event(&origin, object);
        self.with_events(|store, index| store.apply(index, origin, id, Some(new)));
    }

    /// An Event was deleted.
    pub(super) fn delete_admission(&mut self, origin: &Origin, object: &SourceObject) {
        let id = EventId::of(object.meta());
        self.with_events(|store, index| store.delete(index, origin, &id));
    }

    /// A relist of `origin` begins (for Events); an unfinished one is
    /// abandoned.
    pub(super) fn admission_relist_start(&mut self, origin: Origin) {
        self.with_events(|store, index| store.relist_start(index, origin));
    }

    /// An Event of the relist of `origin` in progress.
    pub(super) fn admission_relist_apply(&mut self, origin: Origin, object: &SourceObject) {
        let (id, new) = self.prepare_event(&origin, object);
        self.with_events(|store, index| store.relist_apply(index, origin, id, Some(new)));
    }

    /// The relist of `origin` is complete: its Events replace the origin's.
    pub(super) fn admission_relist_end(&mut self, origin: Origin) {
        self.with_events(|store, index| store.relist_end(index, origin));
    }

    /// An Event's identity and what it adds (admissions are scoped by the
    /// admitted resource's namespace, once decoded). Logs and counts an
    /// Event when it newly becomes invalid.
    fn prepare_event(&mut self, origin: &Origin, object: &SourceObject) -> (EventId, Counted) {
        let id = EventId::of(object.meta());
        let namespace = object.meta().namespace.as_deref().unwrap_or("");
        let decoded = match &object.body {
            Body::Object(raw) => event::decode(raw.raw.get(), namespace),
            Body::Report(_) => Err(DecodeError {
                field: "event".into(),
                reason: "a report, not an Event".into(),
            }),
        };
        let counted = match decoded {
            Ok(Some(b)) if self.namespace_filter.admits(&b.namespace) => {
                let outcome = match (b.blocked, b.decided_by_policy) {
                    (false, _) => Outcome::Audit,
                    (true, false) => Outcome::Blocked,
                    (true, true) => match self.policies.denies(&b.policy) {
                        Some(true) => Outcome::Blocked,
                        Some(false) => Outcome::Audit,
                        None => Outcome::Undecided,
                    },
                };
                let key = AdmissionKey {
                    namespace: self.strings.intern(&b.namespace),
                    policy: self.strings.intern(&b.policy),
                    rule: self.strings.intern(&b.rule),
                    kind: self.strings.intern(&b.kind),
                    outcome,
                };
                Counted {
                    counted: b.count,
                    counter: self.admissions.id(key),
                    invalid: false,
                }
            }
            Ok(_) => Counted::NOTHING,
            Err(err) => {
                let was_invalid = self.events.get(origin, &id).is_some_and(|c| c.invalid);
                self.count_invalid(was_invalid, origin, object, &err);
                Counted::INVALID
            }
        };
        (id, counted)
    }

    /// Visit `policyreport_admission_blocked_total`: namespace, policy,
    /// rule, kind, control (or ""), and the count. The control is resolved
    /// from the policy name or its category, as learned from policy objects
    /// or from report results.
    pub fn for_each_blocked(&self, f: impl FnMut(&str, &str, &str, &str, &str, u64)) {
        self.for_each_admission(true, f);
    }

    /// Visit `policyreport_admission_audit_failures_total`, the admissions
    /// Audit let through that Enforce would have refused, with the same
    /// arguments as [`Aggregate::for_each_blocked`].
    pub fn for_each_audit_failure(&self, f: impl FnMut(&str, &str, &str, &str, &str, u64)) {
        self.for_each_admission(false, f);
    }

    fn for_each_admission(
        &self,
        blocked: bool,
        mut f: impl FnMut(&str, &str, &str, &str, &str, u64),
    ) {
        let resolve = |s| self.strings.resolve(s);
        // Decided and undecided counters of one series are summed.
        let mut series: std::collections::BTreeMap<(&str, &str, &str, &str), u64> =
            std::collections::BTreeMap::new();
        for (k, n) in self.admissions.iter() {
            let is_blocked = match k.outcome {
                Outcome::Blocked => true,
                Outcome::Audit => false,
                Outcome::Undecided => self.policies.denies(resolve(k.policy)).unwrap_or(true),
            };
            if is_blocked == blocked {
                let key = (
                    resolve(k.namespace),
                    resolve(k.policy),
                    resolve(k.rule),
                    resolve(k.kind),
                );
                *series.entry(key).or_default() += n;
            }
        }
        if series.is_empty() {
            return;
        }
        let categories = self.policy_categories();
        for ((namespace, policy, rule, kind), n) in series {
            let category = categories.get(policy).copied().unwrap_or("");
            let control = self
                .reports
                .controls
                .first_for(policy, category, rule)
                .map_or("", |c| c.name.as_str());
            f(namespace, policy, rule, kind, control, n);
        }
    }
}

/// The families this index serves, in serving order.
pub(super) const FAMILIES: &[Family<Aggregate>] = &[
    Family {
        name: "policyreport_admission_blocked",
        help: "Admission requests Kyverno blocked, counted from its PolicyViolation Events.",
        kind: Type::Counter,
        when: always,
        samples: |a, s| a.for_each_blocked(admission_samples(s)),
    },
    Family {
        name: "policyreport_admission_audit_failures",
        help: "Admission requests Audit let through with a failing or erroring rule, which Enforce would have refused, counted from Kyverno's PolicyViolation Events.",
        kind: Type::Counter,
        when: always,
        samples: |a, s| a.for_each_audit_failure(admission_samples(s)),
    },
];

/// A writer of admission counter samples (blocked, audit failures), as the
/// aggregate's `for_each_blocked` and `for_each_audit_failure` visit them.
fn admission_samples<'s, 'b>(
    s: &'s mut Samples<'b>,
) -> impl FnMut(&str, &str, &str, &str, &str, u64) {
    move |namespace, policy, rule, kind, control, n| {
        let labels = [
            ("namespace", namespace),
            ("policy", policy),
            ("rule", rule),
            ("kind", kind),
            ("control", control),
        ];
        s.write(labels, n)
    }
}

#[cfg(test)]
mod tests {
    use super::super::uid::uuid_bytes;
    use super::*;

    fn meta(ns: &str, name: &str, uid: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            uid: uid.map(str::to_owned),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn an_event_is_its_uid_else_its_namespace_and_name() {
        let uuid = "0123abcd-4567-89ef-0011-223344556677";
        assert_eq!(
            EventId::of(&meta("default", "p.1", Some(uuid))),
            EventId::Uid(Key::Uuid(uuid_bytes(uuid).expect("a UUID")))
        );
        // Not a lowercase UUID (uid.rs tests which texts are): as written.
        assert_eq!(
            EventId::of(&meta("default", "p.1", Some("u1"))),
            EventId::Uid(Key::Text("u1".into()))
        );
        for uid in [None, Some("")] {
            assert_eq!(
                EventId::of(&meta("default", "p.1", uid)),
                EventId::Name("default/p.1".into())
            );
        }
    }

    #[test]
    fn a_slot_is_40_bytes() {
        assert_eq!(size_of::<EventId>() + size_of::<Counted>(), 40);
        assert_eq!(size_of::<(EventId, Counted)>(), 40);
    }
}
