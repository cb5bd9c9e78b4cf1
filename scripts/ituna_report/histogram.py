"""Bounded log-bucket histogram (HDR-style) for duration percentiles.

A value v (integer nanoseconds) falls into a bucket keyed by its highest 8 significant
bits, so each bucket spans at most 1/128 of its lower bound. Percentiles report the
bucket's midpoint, clamped to the exact min and max, so any percentile is within 0.4 %
of the true sample value at that rank (exact below 256 ns). Count, sum, min and max are
exact. Memory: at most 128 buckets per power of two actually used (~ a few thousand ints
for durations from 1 us to hours), independent of the number of samples.
"""

import math

__all__ = ["LogHistogram"]


def _bounds(key):
    s = key >> 8
    if s == 0:
        return key, key
    m = key & 255
    return m << s, ((m + 1) << s) - 1


class LogHistogram:
    __slots__ = ("counts", "n", "total", "min", "max")

    def __init__(self):
        self.counts = {}
        self.n = 0
        self.total = 0
        self.min = None
        self.max = None

    def add(self, v):
        if v < 0:
            v = 0
        bl = v.bit_length()
        key = v if bl <= 8 else (((bl - 8) << 8) | (v >> (bl - 8)))
        c = self.counts
        c[key] = c.get(key, 0) + 1
        self.n += 1
        self.total += v
        if self.min is None or v < self.min:
            self.min = v
        if self.max is None or v > self.max:
            self.max = v

    def add_many(self, values):
        """add() for a list of non-negative ints, in one tight loop."""
        if not values:
            return
        c = self.counts
        get = c.get
        total = 0
        for v in values:
            if v < 0:
                v = 0
            bl = v.bit_length()
            key = v if bl <= 8 else (((bl - 8) << 8) | (v >> (bl - 8)))
            c[key] = get(key, 0) + 1
            total += v
        lo, hi = min(values), max(values)
        lo = max(lo, 0)
        self.n += len(values)
        self.total += total
        if self.min is None or lo < self.min:
            self.min = lo
        if self.max is None or hi > self.max:
            self.max = max(hi, 0)

    def merge(self, other):
        for k, c in other.counts.items():
            self.counts[k] = self.counts.get(k, 0) + c
        self.n += other.n
        self.total += other.total
        for v in (other.min, other.max):
            if v is not None:
                self.min = v if self.min is None else min(self.min, v)
                self.max = v if self.max is None else max(self.max, v)

    def percentile(self, p):
        """Value at percentile p (0..100), nearest-rank definition; None when empty."""
        if not self.n:
            return None
        rank = max(1, int(math.ceil(p / 100.0 * self.n)))
        seen = 0
        for key in sorted(self.counts):
            seen += self.counts[key]
            if seen >= rank:
                lo, hi = _bounds(key)
                v = (lo + hi) // 2
                return min(max(v, self.min), self.max)
        return self.max

    def percentiles(self, ps=(50, 95, 99)):
        """Several percentiles in one pass over the sorted buckets."""
        if not self.n:
            return [None] * len(ps)
        ranks = [max(1, int(math.ceil(p / 100.0 * self.n))) for p in ps]
        out = [None] * len(ps)
        order = sorted(range(len(ps)), key=lambda i: ranks[i])
        j, seen = 0, 0
        for key in sorted(self.counts):
            seen += self.counts[key]
            while j < len(order) and seen >= ranks[order[j]]:
                lo, hi = _bounds(key)
                out[order[j]] = min(max((lo + hi) // 2, self.min), self.max)
                j += 1
            if j == len(order):
                break
        return out

    def mean(self):
        return self.total / self.n if self.n else None

    def bins(self, nbins=24):
        """Re-binned counts for a chart: nbins log-spaced bins between min and max.
        Returns [(lo_ns, hi_ns, count)]."""
        if not self.n:
            return []
        lo, hi = max(self.min, 1), max(self.max, 1)
        if hi <= lo * 1.05:
            return [(self.min, self.max, self.n)]
        llo, lhi = math.log(lo), math.log(hi * 1.0001)
        step = (lhi - llo) / nbins
        edges = [math.exp(llo + i * step) for i in range(nbins + 1)]
        counts = [0] * nbins
        for key, c in self.counts.items():
            a, b = _bounds(key)
            mid = max((a + b) / 2.0, 1.0)
            mid = min(max(mid, lo), hi)
            i = int((math.log(mid) - llo) / step)
            counts[min(max(i, 0), nbins - 1)] += c
        return [(int(edges[i]), int(edges[i + 1]), counts[i]) for i in range(nbins)]
