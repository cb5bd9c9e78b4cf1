"""The self-contained HTML page of a Report: one file, inline CSS, JS and SVG, the
figures embedded as JSON; it opens from file:// and makes no network request."""

import datetime as _dt
import json

__all__ = ["render_html"]


def _data_json(report):
    d = report.to_dict(include_traces=False)
    d["slowest"] = report.slowest
    # The search set: embedded traces plus any asked for, without duplicates.
    seen = set()
    traces = []
    for t in list(report.found) + list(report.slowest) + list(report.embedded):
        if t["traceId"] not in seen:
            seen.add(t["traceId"])
            traces.append(t)
    d["traceData"] = traces
    d["generated"] = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = json.dumps(d, separators=(",", ":"), allow_nan=False, default=str)
    # Inside <script>: no "</script>", no "<!--" can appear once every '<' is escaped.
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def render_html(report):
    return _PAGE.replace("/*__DATA__*/", _data_json(report)).replace("/*__CSS__*/", _CSS).replace(
        "/*__JS__*/", _JS)


_CSS = r"""
:root { --fg:#1d2430; --muted:#5b6577; --line:#d8dde6; --bg:#f6f7f9; --card:#fff;
        --accent:#c2410c; --cp:#c2410c; --other:#94a3b8; --wait:#f59e0b; --err:#dc2626; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color:var(--fg); background:var(--bg); }
header { background:#0f172a; color:#fff; padding:18px 28px; }
header h1 { margin:0 0 4px; font-size:22px; }
header .sub { color:#cbd5e1; }
main { max-width:1180px; margin:0 auto; padding:18px 28px 60px; }
section { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:16px 20px;
          margin:16px 0; }
h2 { font-size:17px; margin:0 0 6px; }
p.explain { color:var(--muted); margin:0 0 12px; max-width:860px; }
table { border-collapse:collapse; width:100%; }
th, td { text-align:left; padding:5px 8px; border-bottom:1px solid var(--line); vertical-align:middle; }
th { font-weight:600; color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.03em; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
.bar { height:14px; background:var(--accent); border-radius:3px; min-width:2px; }
.barcell { width:34%; }
.verdict { font-size:16px; padding:10px 14px; background:#fff7ed; border-left:4px solid var(--accent);
           margin:0 0 14px; }
.glossary { display:grid; grid-template-columns:repeat(auto-fit, minmax(240px, 1fr)); gap:10px; }
.glossary div { background:var(--bg); padding:8px 10px; border-radius:6px; }
.glossary b { display:block; }
.pill { display:inline-block; padding:1px 7px; border-radius:10px; font-size:12px; background:#e2e8f0; }
.pill.err { background:#fee2e2; color:#991b1b; }
.pill.ok { background:#dcfce7; color:#166534; }
.search { display:flex; gap:8px; margin:6px 0 12px; }
.search input { flex:1; padding:8px 10px; font:inherit; border:1px solid var(--line); border-radius:6px; }
.search button, button.link { padding:8px 14px; font:inherit; border:1px solid #0f172a; background:#0f172a;
          color:#fff; border-radius:6px; cursor:pointer; }
button.link { background:none; color:#1d4ed8; border:none; padding:0; text-decoration:underline; }
#search-msg { color:var(--muted); min-height:1.4em; }
.wf { border:1px solid var(--line); border-radius:6px; overflow:hidden; }
.wf-head { padding:8px 12px; background:var(--bg); border-bottom:1px solid var(--line); }
.wf-row { display:flex; align-items:center; border-bottom:1px solid #eef1f5; cursor:pointer; min-height:24px; }
.wf-row:hover { background:#f1f5f9; }
.wf-row.sel { background:#e0f2fe; }
.wf-label { width:34%; padding:2px 8px; white-space:nowrap; overflow:hidden; text-overflow:ellipsis; font-size:13px; }
.wf-label .svc { color:var(--muted); font-size:11px; margin-left:6px; }
.wf-track { position:relative; flex:1; height:22px; margin-right:8px; }
.wf-span { position:absolute; top:4px; height:14px; border-radius:2px; background:var(--other); min-width:2px; }
.wf-span.cp { background:var(--cp); }
.wf-span.error { outline:2px solid var(--err); }
.wf-wait { position:absolute; top:9px; height:4px; background:repeating-linear-gradient(90deg, var(--wait) 0 4px, transparent 4px 7px); }
.wf-dur { position:absolute; top:3px; font-size:11px; color:var(--muted); white-space:nowrap; }
.legend span { display:inline-block; margin-right:16px; font-size:12px; color:var(--muted); }
.legend i { display:inline-block; width:22px; height:10px; margin-right:5px; vertical-align:middle; border-radius:2px; }
#details { margin-top:12px; }
#details table td:first-child { width:30%; color:var(--muted); font-family:ui-monospace, monospace; font-size:12px; }
#details table td { font-family:ui-monospace, monospace; font-size:12px; word-break:break-all; }
svg text { font-family:system-ui, sans-serif; }
.hist { display:block; }
.small { font-size:12px; color:var(--muted); }
.two { display:grid; grid-template-columns:1fr 1fr; gap:16px; }
@media (max-width: 900px) { .two { grid-template-columns:1fr; } }
"""

_JS = r"""
(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('report-data').textContent);
  function el(tag, attrs, kids) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) {
      if (k === 'text') e.textContent = attrs[k];
      else if (k === 'cls') e.className = attrs[k];
      else if (k === 'style') e.setAttribute('style', attrs[k]);
      else if (k.slice(0, 2) === 'on') e.addEventListener(k.slice(2), attrs[k]);
      else e.setAttribute(k, attrs[k]);
    }
    (kids || []).forEach(function (c) { if (c != null) e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c); });
    return e;
  }
  var SVGNS = 'http://www.w3.org/2000/svg';
  function sv(tag, attrs, text) {
    var e = document.createElementNS(SVGNS, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text != null) e.textContent = text;
    return e;
  }
  function ms(v) {
    if (v == null) return '-';
    if (v < 1) return v.toFixed(2) + ' ms';
    if (v < 100) return v.toFixed(1) + ' ms';
    if (v < 1000) return Math.round(v) + ' ms';
    if (v < 60000) return (v / 1000).toFixed(2) + ' s';
    return (v / 60000).toFixed(1) + ' min';
  }
  function pct(x) { return (100 * x).toFixed(1) + '%'; }
  function td(t, cls) { return el('td', { text: t, cls: cls || '' }); }
  function th(t, cls) { return el('th', { text: t, cls: cls || '' }); }
  function table(head, rows, numFrom) {
    var t = el('table');
    t.appendChild(el('thead', null, [el('tr', null, head.map(function (h, i) { return th(h, i >= numFrom ? 'num' : ''); }))]));
    var b = el('tbody');
    rows.forEach(function (r) { b.appendChild(r); });
    t.appendChild(b);
    return t;
  }

  // ---- summary
  var oc = D.outcomes || {};
  var good = D.goodOutcomes || ['served'];
  function isGood(o) { return good.indexOf(o) >= 0; }
  document.getElementById('summary').textContent =
    D.traces + ' ' + (D.unit || 'traces') + ' (' + (D.outcomeOrder || ['served', 'rejected', 'incomplete']).map(function (o) {
      return (oc[o] || 0) + ' ' + o;
    }).join(', ') + ') - ' + D.spans + ' spans - generated ' + D.generated;

  // ---- ranking
  var rk = document.getElementById('ranking');
  if (D.ranking.length) {
    var top = D.ranking[0];
    document.getElementById('verdict').textContent = 'Slowest stage: ' + top.stage + ' - ' + pct(top.share) +
      ' of the time orders spent on their critical path (' + ms(top.meanPerTraceMs) + ' per order on average).';
  } else {
    document.getElementById('verdict').textContent = 'No spans in the input.';
  }
  var maxShare = D.ranking.length ? D.ranking[0].share : 1;
  rk.appendChild(table(['#', 'stage', 'share of order time', '', 'total', 'per order'],
    D.ranking.map(function (r, i) {
      var isWait = r.stage.indexOf('queue wait ') === 0;
      return el('tr', { cls: 'rank-row', 'data-stage': r.stage }, [
        td(String(i + 1)),
        el('td', null, [r.stage, isWait ? el('span', { cls: 'pill', text: 'Kafka', style: 'margin-left:6px' }) : null]),
        td(pct(r.share), 'num'),
        el('td', { cls: 'barcell' }, [el('div', { cls: 'bar', style: 'width:' + (100 * r.share / maxShare).toFixed(1) + '%' + (isWait ? ';background:var(--wait)' : '') })]),
        td(ms(r.totalMs), 'num'), td(ms(r.meanPerTraceMs), 'num')]);
    }), 2));

  // ---- end to end
  document.getElementById('e2e').appendChild(table(['order source', 'outcome', 'orders', 'p50', 'p95', 'p99', 'max'],
    D.endToEnd.map(function (e) {
      return el('tr', null, [td(e.source), el('td', null, [el('span', { cls: 'pill ' + (isGood(e.outcome) ? 'ok' : 'err'), text: e.outcome })]),
        td(String(e.count), 'num'), td(ms(e.p50Ms), 'num'), td(ms(e.p95Ms), 'num'), td(ms(e.p99Ms), 'num'), td(ms(e.maxMs), 'num')]);
    }), 2));

  // ---- queue wait
  var qw = document.getElementById('queues');
  if (D.queueWait.length) {
    qw.appendChild(table(['topic', 'messages', 'p50', 'p95', 'p99', 'max', 'consumer\'s own p50', 'p95'],
      D.queueWait.map(function (q) {
        return el('tr', null, [td(q.topic), td(String(q.count), 'num'), td(ms(q.p50Ms), 'num'), td(ms(q.p95Ms), 'num'),
          td(ms(q.p99Ms), 'num'), td(ms(q.maxMs), 'num'), td(ms(q.attr.p50Ms), 'num'), td(ms(q.attr.p95Ms), 'num')]);
      }), 1));
  } else qw.appendChild(el('p', { cls: 'small', text: 'No Kafka hops in these traces.' }));

  // ---- service graph
  (function () {
    var g = D.serviceGraph, host = document.getElementById('graph');
    if (!g.nodes.length) { host.appendChild(el('p', { cls: 'small', text: 'No services.' })); return; }
    var layers = {}, maxLayer = 0;
    g.nodes.forEach(function (n) { (layers[n.layer] = layers[n.layer] || []).push(n); maxLayer = Math.max(maxLayer, n.layer); });
    var colW = 265, rowH = 70, nw = 172, nh = 40, maxRows = 1, top = 44;
    for (var l in layers) maxRows = Math.max(maxRows, layers[l].length);
    var W = maxLayer * colW + nw + 20, H = maxRows * rowH + top + 10, pos = {}, layerOf = {};
    for (var l2 in layers) layers[l2].forEach(function (n, i) {
      var off = (maxRows - layers[l2].length) * rowH / 2;
      pos[n.id] = { x: 10 + n.layer * colW, y: top + off + i * rowH };
      layerOf[n.id] = n.layer;
    });
    var s = sv('svg', { width: W, height: H, viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': 'service graph',
                        style: 'max-width:100%;height:auto' });
    var defs = sv('defs', {});
    var mk = sv('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' });
    mk.appendChild(sv('path', { d: 'M 0 0 L 10 5 L 0 10 z', fill: '#64748b' }));
    defs.appendChild(mk); s.appendChild(defs);
    g.edges.forEach(function (e) {
      var a = pos[e.from], b = pos[e.to]; if (!a || !b) return;
      var x1 = a.x + nw, y1 = a.y + nh / 2, x2 = b.x, y2 = b.y + nh / 2, mx = (x1 + x2) / 2, d, ly;
      if (layerOf[e.to] - layerOf[e.from] > 1) {  // skips a layer: route above the nodes
        var yt = 12;
        d = 'M' + x1 + ',' + y1 + ' C' + (x1 + 60) + ',' + yt + ' ' + (x2 - 60) + ',' + yt + ' ' + x2 + ',' + y2;
        ly = yt + 14;
      } else {
        d = 'M' + x1 + ',' + y1 + ' C' + mx + ',' + y1 + ' ' + mx + ',' + y2 + ' ' + x2 + ',' + y2;
        ly = (y1 + y2) / 2 - 5;
      }
      s.appendChild(sv('path', { d: d, fill: 'none', stroke: '#94a3b8', 'stroke-width': 1.5, 'marker-end': 'url(#arrow)' }));
      s.appendChild(sv('text', { x: mx, y: ly, 'text-anchor': 'middle', 'font-size': 10, fill: '#334155' }, e.messages + ' msg'));
      if (e.queueWaitP50Ms != null) s.appendChild(sv('text', { x: mx, y: ly + 19, 'text-anchor': 'middle', 'font-size': 10,
        fill: '#b45309' }, 'wait ' + ms(e.queueWaitP50Ms)));
    });
    g.nodes.forEach(function (n) {
      var p = pos[n.id], topic = n.type === 'topic';
      var grp = sv('g', { 'class': 'node', 'data-id': n.id });
      grp.appendChild(sv('rect', { x: p.x, y: p.y, width: nw, height: nh, rx: topic ? 18 : 6,
        fill: topic ? '#fef3c7' : '#e0e7ff', stroke: topic ? '#d97706' : '#4f46e5' }));
      grp.appendChild(sv('text', { x: p.x + nw / 2, y: p.y + 17, 'text-anchor': 'middle', 'font-size': 12, 'font-weight': 600 }, n.label));
      grp.appendChild(sv('text', { x: p.x + nw / 2, y: p.y + 32, 'text-anchor': 'middle', 'font-size': 10, fill: '#475569' }, topic ? 'Kafka topic' : 'service'));
      s.appendChild(grp);
    });
    host.appendChild(s);
  })();

  // ---- stages with histograms
  function hist(bins) {
    var w = 180, h = 34, s = sv('svg', { width: w, height: h, 'class': 'hist', role: 'img', 'aria-label': 'histogram' });
    if (!bins.length) return s;
    var max = Math.max.apply(null, bins.map(function (b) { return b[2]; })) || 1, bw = w / bins.length;
    bins.forEach(function (b, i) {
      var bh = b[2] ? Math.max(1.5, (h - 2) * b[2] / max) : 0;
      var r = sv('rect', { x: i * bw + 0.5, y: h - bh, width: Math.max(1, bw - 1), height: bh, fill: '#6366f1' });
      r.appendChild(sv('title', {}, ms(b[0]) + ' - ' + ms(b[1]) + ': ' + b[2] + ' spans'));
      s.appendChild(r);
    });
    return s;
  }
  document.getElementById('stages').appendChild(table(['service', 'span', 'count', 'errors', 'p50', 'p95', 'p99', 'max', 'distribution (log scale, min to max)'],
    D.stages.map(function (s) {
      return el('tr', null, [td(s.service), td(s.name), td(String(s.count), 'num'),
        td(s.errors ? pct(s.errorRate) : '-', 'num'), td(ms(s.p50Ms), 'num'), td(ms(s.p95Ms), 'num'),
        td(ms(s.p99Ms), 'num'), td(ms(s.maxMs), 'num'), el('td', null, [hist(s.histogram)])]);
    }), 2));

  // ---- problems
  var pr = document.getElementById('problems');
  var probs = [];
  D.broken.forEach(function (b) {
    probs.push(el('li', null, [b.kind + ': ' + b.count + ' trace(s). Examples: ',
      el('span', null, b.examples.slice(0, 5).map(function (t) { return el('button', { cls: 'link', text: t.slice(0, 16), onclick: function () { openTrace(t); } }); }))]));
  });
  D.clockSkew.forEach(function (s) {
    probs.push(el('li', { text: 'Clock skew between ' + s.from + ' and ' + s.to + ' in ' + s.traces + ' trace(s): ' + s.to +
      '\'s clock is behind by at least ' + ms(s.estimatedSkewMs) + '. Its spans were shifted forward so they do not start before the span that caused them.' }));
  });
  if (D.lateSpans) probs.push(el('li', { text: D.lateSpans + ' spans arrived after their trace had been finalised (raise --max-in-flight).' }));
  if (!probs.length) probs.push(el('li', { text: 'None: every consumer found its producer, no span lost its parent, no trace was cut short, no clock skew.' }));
  pr.appendChild(el('ul', null, probs));

  // ---- traces: slowest list, search, waterfall
  var byId = {};
  D.traceData.forEach(function (t) {
    byId[t.traceId.toLowerCase()] = t;
    if (t.orderId) byId[String(t.orderId).toLowerCase()] = t;
  });
  var sl = document.getElementById('slowest');
  sl.appendChild(table(['order', 'source', 'outcome', 'end to end', ''],
    D.slowest.map(function (t) {
      return el('tr', null, [td(t.orderId || '-'), td(t.source), td(t.outcome), td(ms(t.e2eMs), 'num'),
        el('td', null, [el('button', { cls: 'link', text: 'open waterfall', onclick: function () { openTrace(t.traceId); } })])]);
    }), 3));

  var wf = document.getElementById('waterfall'), det = document.getElementById('details'), msg = document.getElementById('search-msg');
  function openTrace(id) {
    var key = String(id || '').trim().toLowerCase(), t = byId[key];
    if (!t && key.length >= 6) {
      for (var k in byId) if (k.indexOf(key) === 0) { t = byId[k]; break; }
    }
    if (!t) {
      msg.textContent = 'No order or trace "' + id + '" in this page. It holds ' + D.traceData.length + ' of ' + D.traces +
        ' traces (the slowest). Any order: ituna-report TRACES --order ' + id;
      return false;
    }
    msg.textContent = '';
    drawWaterfall(t);
    wf.scrollIntoView({ block: 'start' });
    return true;
  }
  window.ituna = { openTrace: openTrace };
  function drawWaterfall(t) {
    wf.textContent = ''; det.textContent = '';
    var total = Math.max(t.totalMs, 1e-6);
    var head = el('div', { cls: 'wf-head' }, [el('b', { text: 'Order ' + (t.orderId || '-') }),
      ' - ' + t.source + ' - ', el('span', { cls: 'pill ' + (isGood(t.outcome) ? 'ok' : 'err'), text: t.outcome }),
      ' - end to end ' + ms(t.e2eMs) + ' - trace ', el('code', { text: t.traceId })]);
    var box = el('div', { cls: 'wf', id: 'wf-' + t.traceId }, [head]);
    t.spans.forEach(function (s, i) {
      var left = 100 * s.startMs / total, width = Math.max(0.15, 100 * s.durMs / total);
      var track = el('div', { cls: 'wf-track' });
      if (s.queueWaitMs) {
        var wl = 100 * (s.startMs - s.queueWaitMs) / total;
        track.appendChild(el('div', { cls: 'wf-wait', title: 'waited in Kafka ' + ms(s.queueWaitMs), style: 'left:' + wl + '%;width:' + (100 * s.queueWaitMs / total) + '%' }));
      }
      track.appendChild(el('div', { cls: 'wf-span' + (s.cpMs > 0 ? ' cp' : '') + (s.error ? ' error' : ''), style: 'left:' + left + '%;width:' + width + '%' }));
      var after = left + width, lead = s.queueWaitMs ? 100 * (s.startMs - s.queueWaitMs) / total : left;
      var dstyle = width > 14 ? 'right:' + (100 - after + 0.5) + '%;color:#fff' :
        after > 85 ? 'right:' + (100 - lead + 0.5) + '%' : 'left:' + (after + 0.5) + '%';
      track.appendChild(el('div', { cls: 'wf-dur', text: ms(s.durMs), style: dstyle }));
      var row = el('div', { cls: 'wf-row', 'data-span': s.id, onclick: function () { select(row, s); } }, [
        el('div', { cls: 'wf-label', style: 'padding-left:' + (8 + 14 * Math.min(s.depth, 10)) + 'px', title: s.service + ' / ' + s.name },
          [(s.error ? '\u26a0 ' : '') + s.name, el('span', { cls: 'svc', text: s.service })]),
        track]);
      box.appendChild(row);
    });
    wf.appendChild(box);
    wf.appendChild(el('p', { cls: 'small', text: 'Click a row to see the span\'s attributes.' }));
  }
  function select(row, s) {
    Array.prototype.forEach.call(document.querySelectorAll('.wf-row.sel'), function (r) { r.classList.remove('sel'); });
    row.classList.add('sel');
    det.textContent = '';
    var rows = [['span', s.name], ['service', s.service], ['kind', s.kind], ['starts at', '+' + ms(s.startMs)],
      ['duration', ms(s.durMs)], ['own time on the critical path', ms(s.cpMs)], ['span id', s.id]];
    if (s.queueWaitMs != null) rows.push(['waited in Kafka (' + s.topic + ')', ms(s.queueWaitMs)]);
    if (s.skewShiftMs) rows.push(['clock skew correction', '+' + ms(s.skewShiftMs)]);
    if (s.error) rows.push(['status', 'ERROR' + (s.statusMessage ? ': ' + s.statusMessage : '')]);
    Object.keys(s.attrs).sort().forEach(function (k) { rows.push([k, JSON.stringify(s.attrs[k])]); });
    (s.events || []).forEach(function (e) { rows.push(['event at +' + ms(e.atMs), e.name + ' ' + JSON.stringify(e.attrs)]); });
    (s.links || []).forEach(function (l) { rows.push(['link', l.traceId + ' / ' + l.spanId]); });
    det.appendChild(el('h3', { text: 'Span details', style: 'margin:6px 0' }));
    det.appendChild(el('table', { id: 'attrs' }, [el('tbody', null, rows.map(function (r) { return el('tr', null, [td(r[0]), td(String(r[1]))]); }))]));
  }
  document.getElementById('search-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    openTrace(document.getElementById('search').value);
  });
  if (D.slowest.length) drawWaterfall(D.slowest[0]);
})();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>ITuna report - which stage makes orders slow?</title>
<style>/*__CSS__*/</style>
</head>
<body>
<header>
  <h1>Which stage makes orders slow?</h1>
  <div class="sub" id="summary"></div>
</header>
<main>
<section>
  <h2>How to read this page</h2>
  <div class="glossary">
    <div><b>Order = trace</b>Everything that happened to one order, across every service, is one <i>trace</i>.</div>
    <div><b>Span</b>One piece of work by one service, with a start and an end (for example <i>roll</i> in the kitchen).</div>
    <div><b>Queue wait</b>Time a message sat in a Kafka topic between one service sending it and the next one starting on it.</div>
    <div><b>Critical path</b>The chain of work and waiting that decided when an order was done. Speeding up anything else would not make that order faster.</div>
  </div>
</section>
<section>
  <h2>Where the time goes</h2>
  <p class="verdict" id="verdict"></p>
  <p class="explain">Each stage's share of the orders' critical paths, over all orders. A stage is a span's own time (not counting the work it waited for) or the wait in a Kafka topic. The top row is the bottleneck: make it faster and orders get faster.</p>
  <div id="ranking"></div>
</section>
<section>
  <h2>End-to-end time per order source</h2>
  <p class="explain">From the moment an order was placed to the end of the kitchen's last step (rejected orders: to the rejection). p50 is the typical order, p95 and p99 the slow ones.</p>
  <div id="e2e"></div>
</section>
<section>
  <h2>Services and topics</h2>
  <p class="explain">Who sends to which Kafka topic and who reads from it. Edges show message counts, and the median wait in the topic.</p>
  <div id="graph" style="overflow-x:auto"></div>
</section>
<section>
  <h2>Waiting in Kafka</h2>
  <p class="explain">Per topic: from the end of the sending span to the start of the consumer's span. The last two columns are the consumer's own figure, measured from the message's Kafka timestamp.</p>
  <div id="queues"></div>
</section>
<section>
  <h2>Find an order</h2>
  <p class="explain">Type an order id (or a trace id) to see its waterfall: one bar per span on a common time line. Orange bars are on the critical path, grey bars ran in parallel or did not hold the order up, the dashed yellow line is time spent waiting in Kafka.</p>
  <form class="search" id="search-form" autocomplete="off">
    <input id="search" type="search" placeholder="order id or trace id" aria-label="order id or trace id">
    <button type="submit" id="search-btn">Show waterfall</button>
  </form>
  <div id="search-msg"></div>
  <div class="legend"><span><i style="background:var(--cp)"></i>critical path</span><span><i style="background:var(--other)"></i>other work</span><span><i style="background:repeating-linear-gradient(90deg,var(--wait) 0 4px,transparent 4px 7px)"></i>waiting in Kafka</span><span><i style="outline:2px solid var(--err);background:#fff"></i>error</span></div>
  <div id="waterfall"></div>
  <div id="details"></div>
</section>
<section>
  <h2>Slowest orders</h2>
  <div id="slowest"></div>
</section>
<section>
  <h2>Every stage</h2>
  <p class="explain">How long each kind of span took, whether or not it held orders up. The small chart shows how durations spread out (left: fastest, right: slowest). Percentiles come from a log-bucket histogram and are within 0.4% of the exact value.</p>
  <div id="stages"></div>
</section>
<section>
  <h2>Problems in the data</h2>
  <p class="explain">Traces the services did not record completely, and clocks that disagree between machines. They are counted here rather than silently added up.</p>
  <div id="problems"></div>
</section>
</main>
<script type="application/json" id="report-data">/*__DATA__*/</script>
<script>/*__JS__*/</script>
</body>
</html>
"""
