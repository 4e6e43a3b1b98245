//! The entries of a single document's `items`, handed on as they are
//! decoded: the part of streaming a file that JSON and YAML share. Each
//! format drives [`ListItems`] with its own decoder, then finishes the
//! document with [`ListItems::finish`], reading what is left (Events and
//! policies) its own way.

use super::Parsed;
use crate::kind::Kind;
use crate::report::{ItemSink, Report};
use crate::source::SourceObject;

/// A `List` of objects, as opposed to a list kind the exporter reads.
pub(in crate::source) fn is_list((api_version, kind): (Option<&str>, Option<&str>)) -> bool {
    kind.is_some_and(|k| k.ends_with("List"))
        && Kind::from_type(api_version.unwrap_or(""), kind.unwrap_or("")).is_none()
}

/// The kind of a decoded object, if the exporter reads it.
pub(in crate::source) fn report_kind(report: &Report) -> Option<Kind> {
    match report.type_meta() {
        (Some(api_version), Some(kind)) => Kind::from_type(api_version, kind),
        _ => None,
    }
}

/// What is left to read once a document's reports are handed on.
pub(super) enum Rest {
    /// The Events and policies of a `List`, by their positions among its
    /// entries that are objects.
    Entries(Vec<usize>),
    /// The document itself, an Event or a policy.
    Document,
}

/// Hands on the reports of a document's `items` as they are decoded.
///
/// The decoder only learns at the end whether the document is a `List`
/// (kubectl writes `kind: List` after `items`), so entries handed on may be
/// voided by a [`Parsed::Restart`]. The aggregator counts an invalid report
/// as soon as it sees one, which no Restart can take back: from the first
/// invalid report on, reports wait for the end of the document, and are
/// handed on only when it is a `List` that was read to the end.
pub(super) struct ListItems<'o> {
    out: &'o mut dyn FnMut(Parsed),
    /// Whether reports of this `items` were handed on.
    sent: bool,
    /// The reports from the first invalid one on, waiting for the end.
    held: Vec<(Kind, Report)>,
    /// Positions (among the entries that are objects) of Events and policies.
    others: Vec<usize>,
    /// Position of the next entry that is an object.
    index: usize,
}

impl<'o> ListItems<'o> {
    /// A sink handing reports to `out`.
    pub(super) fn new(out: &'o mut dyn FnMut(Parsed)) -> Self {
        Self {
            out,
            sent: false,
            held: Vec::new(),
            others: Vec::new(),
            index: 0,
        }
    }

    /// The document was decoded into `object` (its `items` left out): hand
    /// on what it holds. `rest` reads the Events and policies, or the
    /// document itself when it is one of those, the format's own way; the
    /// reports held back follow only when it succeeds.
    pub(super) fn finish<E>(
        self,
        object: Report,
        rest: impl FnOnce(Rest, &mut dyn FnMut(Parsed)) -> Result<(), E>,
    ) -> Result<(), E> {
        let Self {
            out,
            sent,
            held,
            others,
            ..
        } = self;
        if is_list(object.type_meta()) {
            if !others.is_empty() {
                rest(Rest::Entries(others), out)?;
            }
            for (kind, report) in held {
                out(Parsed::Object(SourceObject::report(kind, report)));
            }
            return Ok(());
        }
        if sent {
            out(Parsed::Restart);
        }
        match report_kind(&object) {
            Some(kind) if kind.is_report() => {
                out(Parsed::Object(SourceObject::report(kind, object)));
                Ok(())
            }
            Some(_) => rest(Rest::Document, out),
            None => Ok(()),
        }
    }

    /// The document cannot be read this way after all: void what was
    /// handed on, and give `out` back.
    pub(super) fn abandon(self) -> &'o mut dyn FnMut(Parsed) {
        if self.sent {
            (self.out)(Parsed::Restart);
        }
        self.out
    }
}

impl ItemSink for ListItems<'_> {
    fn begin(&mut self) {
        // A repeated `items` replaces the earlier one.
        if std::mem::take(&mut self.sent) {
            (self.out)(Parsed::Restart);
        }
        self.held.clear();
        self.others.clear();
        self.index = 0;
    }

    fn item(&mut self, report: Report) {
        let index = self.index;
        self.index += 1;
        let Some(kind) = report_kind(&report) else {
            return;
        };
        if !kind.is_report() {
            self.others.push(index);
        } else if self.held.is_empty() && report.error().is_none() {
            (self.out)(Parsed::Object(SourceObject::report(kind, report)));
            self.sent = true;
        } else {
            self.held.push((kind, report));
        }
    }
}

/// What streaming `text` with `stream` hands on, in order, described, and
/// whether it succeeded: for the tests of both formats.
#[cfg(test)]
pub(super) fn streamed<E>(
    text: &str,
    stream: impl FnOnce(&[u8], &mut dyn FnMut(Parsed)) -> Result<(), E>,
) -> (Vec<String>, bool) {
    use crate::source::Body;
    let mut seen = Vec::new();
    let ok = stream(text.as_bytes(), &mut |p| {
        seen.push(match p {
            Parsed::Object(SourceObject {
                body: Body::Report(r),
                ..
            }) if r.error().is_some() => "invalid".into(),
            Parsed::Object(o) => format!("{} {}", o.kind, o.id().1),
            Parsed::Bad(b) => format!("bad {}", b.kind),
            Parsed::Restart => "restart".into(),
        })
    })
    .is_ok();
    (seen, ok)
}
