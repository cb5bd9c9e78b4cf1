"""What a trace's outcome means: a profile, supplied as data by the application whose
traces are read (the ITuna restaurant ships scripts/restaurant-profile.ini), or the
generic reading of the trace graph when there is none.

Generic (no profile): a trace is "incomplete" when its graph is broken (a consumer
without its producer, a span whose parent is missing), "error" when a span ended in
error and was not retried with success (a later span of the same stage under the same
parent or producer that ended without error, or below one), else "ok".

A profile is an INI file:

    [profile]
    unit = orders/traces            ; what the header counts (default: traces)
    outcomes = rejected, served     ; checked in this order: the first that holds wins
    otherwise = incomplete          ; when none holds (default: incomplete)
    otherwise-problem = cut short   ; listed as a broken trace when otherwise is taken
    good = served                   ; outcomes shown as good (default: the last listed)
    order = served, rejected, incomplete   ; order of the header's counts
    source-attribute = order.source ; span attribute naming a trace's source
    id-attribute = order.id         ; span attribute naming a trace (--order)

    [outcome rejected]              ; holds when any `when...` key holds
    when = sends-to ituna-rejected
    when-spoiled = all-failed main-kitchen
    when-invalid = failed main-order-validation; without kitchen-service main-kitchen

    [sources]                       ; source of a trace by its root span's name
    main-website-order = website

A `when` is predicates joined by ';' (all must hold); each is a word and names (span
names or service names, blank or comma separated):
    sends-to TOPICS    a PRODUCER span sends to one of the topics
    reaches NAMES      a span of these names exists; the trace ends at the last one's end
    failed NAMES       a span of these names ended in error
    all-failed NAMES   spans of these names exist and every one ended in error
    without NAMES      no span of these names exists
"""

import configparser
import re

__all__ = ["Profile", "ProfileError", "load_profile", "GENERIC"]

PREDICATES = ("sends-to", "reaches", "failed", "all-failed", "without")


class ProfileError(ValueError):
    """A profile file that cannot be read or says something unknown; names file and key."""


def _names(text):
    return frozenset(n for n in re.split(r"[\s,]+", text.strip()) if n)


class Profile:
    """Outcome rules and labels. The generic profile has no rules."""

    def __init__(self, name="generic"):
        self.name = name
        self.unit = "traces"
        self.rules = []            # [(outcome, [[(pred, names)], ...])] in order
        self.otherwise = "incomplete"
        self.otherwise_problem = None
        self.good = {"ok"}
        self.order = ["ok", "error", "incomplete"]
        self.source_attr = None
        self.id_attr = None
        self.sources = {}

    @property
    def generic(self):
        return not self.rules

    def with_topics(self, topics):
        """A copy whose sends-to topics (of the first outcome using them) are `topics`:
        ituna-report's --rejected-topic."""
        import copy
        p = copy.deepcopy(self)
        for _, whens in p.rules:
            hit = False
            for preds in whens:
                for i, (pred, _) in enumerate(preds):
                    if pred == "sends-to":
                        preds[i] = (pred, frozenset(topics))
                        hit = True
            if hit:
                break
        return p

    def decide(self, spans, sent_to, broken):
        """(outcome, end) for one trace: end is the time the outcome was reached (None:
        the trace's last end). spans: the trace's Span objects; sent_to: topics its
        PRODUCER spans sent to; broken: the trace's graph is broken."""
        if self.generic:
            if broken:
                return "incomplete", None
            return ("error" if _unrecovered_error(spans) else "ok"), None
        for outcome, whens in self.rules:
            for preds in whens:
                end = _holds(preds, spans, sent_to)
                if end is not False:
                    return outcome, end
        return self.otherwise, None


def _match(sp, names):
    return sp.name in names or sp.service in names


def _holds(preds, spans, sent_to):
    """False, or the end time a `reaches` fixed (None when no reaches)."""
    end = None
    for pred, names in preds:
        if pred == "sends-to":
            if not (sent_to & names):
                return False
        elif pred == "reaches":
            ends = [sp.end for sp in spans if _match(sp, names)]
            if not ends:
                return False
            end = max(ends) if end is None else max(end, max(ends))
        elif pred == "failed":
            if not any(sp.status == 2 and _match(sp, names) for sp in spans):
                return False
        elif pred == "all-failed":
            hit = [sp for sp in spans if _match(sp, names)]
            if not hit or any(sp.status != 2 for sp in hit):
                return False
        elif pred == "without":
            if any(_match(sp, names) for sp in spans):
                return False
    return end


def _unrecovered_error(spans):
    """True when a span ended in error and neither it nor an ancestor was retried with
    success: a later span of the same stage under the same predecessor (parent, or the
    producer of a consumer) that ended without error."""
    ok_after = {}
    for sp in spans:
        if sp.status != 2:
            k = (id(sp.pred), sp.service, sp.name)
            if sp.start > ok_after.get(k, -1):
                ok_after[k] = sp.start
    for sp in spans:
        if sp.status != 2:
            continue
        x, guard, retried = sp, 0, False
        while x is not None and guard < 100000:  # the span, then its predecessors
            if ok_after.get((id(x.pred), x.service, x.name), -1) > x.start:
                retried = True
                break
            x, guard = x.pred, guard + 1
        if not retried:
            return True
    return False


GENERIC = Profile()


def load_profile(path):
    """The Profile in the INI file at path; ProfileError naming the file and key."""
    cp = configparser.ConfigParser(interpolation=None, strict=True, inline_comment_prefixes=(";", "#"))
    cp.optionxform = str  # span names keep their case
    try:
        if not cp.read(path, encoding="utf-8"):
            raise ProfileError("%s: cannot read the profile" % path)
    except configparser.Error as e:
        raise ProfileError("%s: %s" % (path, e)) from None
    if not cp.has_section("profile"):
        raise ProfileError("%s: no [profile] section" % path)
    sec = cp["profile"]
    known = {"name", "unit", "outcomes", "otherwise", "otherwise-problem", "good", "order",
             "source-attribute", "id-attribute"}
    for k in sec:
        if k not in known:
            raise ProfileError("%s: [profile] %s: unknown key (known: %s)" % (path, k, ", ".join(sorted(known))))
    p = Profile(sec.get("name", path))
    p.unit = sec.get("unit", "traces")
    outcomes = [o.strip() for o in sec.get("outcomes", "").split(",") if o.strip()]
    if not outcomes:
        raise ProfileError("%s: [profile] outcomes: name at least one outcome" % path)
    for o in outcomes:
        name = "outcome " + o
        if not cp.has_section(name):
            raise ProfileError("%s: [profile] outcomes names %s, but there is no [%s]" % (path, o, name))
        whens = []
        for key, text in cp[name].items():
            if not key.startswith("when"):
                raise ProfileError("%s: [%s] %s: unknown key (keys start with 'when')" % (path, name, key))
            preds = []
            for part in text.split(";"):
                part = part.strip()
                if not part:
                    continue
                word, _, rest = part.partition(" ")
                if word not in PREDICATES:
                    raise ProfileError("%s: [%s] %s: unknown predicate %r (known: %s)"
                                       % (path, name, key, word, ", ".join(PREDICATES)))
                names = _names(rest)
                if not names:
                    raise ProfileError("%s: [%s] %s: %s names nothing" % (path, name, key, word))
                preds.append((word, names))
            if not preds:
                raise ProfileError("%s: [%s] %s: empty" % (path, name, key))
            whens.append(preds)
        if not whens:
            raise ProfileError("%s: [%s]: no 'when' key" % (path, name))
        p.rules.append((o, whens))
    p.otherwise = sec.get("otherwise", "incomplete").strip()
    p.otherwise_problem = sec.get("otherwise-problem", "").strip() or None
    good = [g.strip() for g in sec.get("good", outcomes[-1]).split(",") if g.strip()]
    p.good = set(good)
    order = [o.strip() for o in sec.get("order", "").split(",") if o.strip()]
    p.order = order or outcomes + [p.otherwise]
    for o in outcomes + [p.otherwise]:
        if o not in p.order:
            p.order.append(o)
    p.source_attr = sec.get("source-attribute") or None
    p.id_attr = sec.get("id-attribute") or None
    if cp.has_section("sources"):
        p.sources = dict(cp["sources"].items())
    return p
