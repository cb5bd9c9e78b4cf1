-- test_api.lua - the Lua module's tracing API end to end: spans from tracer:span
-- and start_span with <close>, attributes of every type, events, status,
-- exceptions, links, nesting and the current context, inject/extract, and the
-- spans read back from the file exporter (each ended exactly once).
local T = require "testlib"
local ituna = require "ituna"

local path = T.tmpfile("api.jsonl")
local tracer = ituna.init(T.file_tracer_opts("lua-api-test", path))
T.eq(tracer:service_name(), "lua-api-test", "service name from init")
T.check(ituna.init{} == tracer, "a second init returns the same tracer")
T.eq(ituna.tracer(), tracer, "ituna.tracer()")

T.section("tracer:span and nesting")
local outer_ctx, inner_ctx, deep_ctx
local r1, r2 = tracer:span("outer", { a = 1, b = "x" }, function(span)
  outer_ctx = span:context()
  T.eq(ituna.current_context().span_id, outer_ctx.span_id, "outer is current inside tracer:span")
  do
    local inner <close> = tracer:start_span("inner", { f = 1.5, yes = true, arr = { 1, 2, 3 }, sarr = { "p", "q" } })
    inner_ctx = inner:context()
    T.eq(ituna.current_context().span_id, inner_ctx.span_id, "start_span makes the span current")
    tracer:span("deep", function(s) deep_ctx = s:context() end)
  end
  T.eq(ituna.current_context().span_id, outer_ctx.span_id, "closing inner restores outer as current")
  return "r1", 2
end)
T.eq(r1, "r1", "tracer:span returns the function's results")
T.eq(r2, 2, "second result")
T.eq(ituna.current_context(), nil, "no current context after the outermost span")
T.eq(#outer_ctx.trace_id, 32, "trace_id is 32 hex")
T.eq(#outer_ctx.span_id, 16, "span_id is 16 hex")
T.check(outer_ctx.trace_id:match("^[0-9a-f]+$"), "lowercase hex")
T.eq(inner_ctx.trace_id, outer_ctx.trace_id, "child in the same trace")
T.eq(deep_ctx.trace_id, outer_ctx.trace_id, "grandchild in the same trace")

T.section("span methods")
local span_methods_ctx
do
  local s <close> = tracer:start_span("methods", nil, { kind = "producer" })
  T.eq(s:set_attribute("k.int", 42), s, "set_attribute returns the span (chainable)")
  s:set_attribute("k.str", "v"):set_attribute("k.bool", false):set_attribute("k.float", 0.25)
  s:add_event("ev", { n = 7 })
  s:add_event("plain")
  s:record_exception("something odd", "a traceback")
  s:set_status("error", "bad thing")
  s:update_name("methods-renamed")
  s:add_link(outer_ctx, { why = "test" })
  T.check(s:is_recording(), "recording")
  T.check(not s:is_ended(), "not ended yet")
  span_methods_ctx = s:context()
  T.raises("expected string, number, boolean or array", s.set_attribute, s, "bad", function() end)
  T.raises("attribute keys must be strings", s.add_event, s, "e", { [1] = "x" })
  T.raises("array mixes", s.set_attribute, s, "mixed", { 1, "a" })
  T.raises("invalid option 'weird'", s.set_status, s, "weird")
  T.raises("bad option 'kind'", tracer.start_span, tracer, "x", nil, { kind = "sideways" })
  T.raises("string expected, got no value", s.set_attribute, s)
end

T.section("counted strings: NUL bytes in values kept, in keys refused")
do
  local s <close> = tracer:start_span("nul-bytes", { v = "a\0b", arr = { "x\0y", "", "\0" } })
  s:set_attribute("tail", "end\0")
  s:add_event("ev", { ek = { "p\0", "q" } })
  for _, bad in ipairs { "k\0", "\0", "a\0b" } do
    T.raises("key contains a NUL byte", s.set_attribute, s, bad, "x")
    T.raises("key contains a NUL byte", s.add_event, s, "bad", { [bad] = 1 })
  end
  T.raises("key is empty", s.set_attribute, s, "", "x")
  T.raises("key contains a NUL byte", tracer.start_span, tracer, "refused", { ["k\0"] = 1 })
end

T.section("ended spans")
local kept
tracer:span("kept", function(s) kept = s end)
T.check(kept:is_ended(), "the span given to tracer:span ends with it")
T.raises("span has already ended", kept.set_attribute, kept, "late", 1)
T.eq(kept:context().span_id:len(), 16, "context() still works after the end")
kept:finish() -- a second end is a no-op

T.section("errors inside tracer:span")
local err_ctx
local ok, err = pcall(tracer.span, tracer, "failing", nil, function(s)
  err_ctx = s:context()
  error("kaboom")
end)
T.check(not ok, "the error propagates")
T.check(tostring(err):find("kaboom", 1, true), "the original message is re-raised")
local errobj = setmetatable({ code = 7 }, { __tostring = function() return "custom error object" end })
local ok2, err2 = pcall(tracer.span, tracer, "failing-object", function() error(errobj) end)
T.check(not ok2 and rawequal(err2, errobj), "a non-string error object is re-raised as is")
T.eq(ituna.current_context(), nil, "context restored after an error")

T.section("parents, roots and links")
local remote = { trace_id = "4bf92f3577b34da6a3ce929d0e0e4736", span_id = "00f067aa0ba902b7", trace_flags = 1 }
local child_of_remote
tracer:span("child-of-remote", nil, { parent = remote, kind = "consumer" }, function(s)
  child_of_remote = s:context()
  local root <close> = tracer:start_span("new-root", nil, { root = true })
  T.check(root:context().trace_id ~= remote.trace_id, "root = true starts a new trace")
end)
T.eq(child_of_remote.trace_id, remote.trace_id, "explicit parent's trace id")
T.raises("bad option 'parent'", tracer.start_span, tracer, "x", nil, { parent = { trace_id = "zz", span_id = "00f067aa0ba902b7" } })
T.raises("bad option 'parent'", tracer.start_span, tracer, "x", nil, { parent = { trace_id = ("0"):rep(32), span_id = "00f067aa0ba902b7" } })

T.section("inject / extract")
local carrier
tracer:span("inject-here", function(s)
  carrier = ituna.inject()
  T.eq(carrier.traceparent, ("00-%s-%s-01"):format(s:context().trace_id, s:context().span_id), "traceparent of the current span")
end)
T.eq(next(ituna.inject()), nil, "no current context: empty carrier")
local ctx = ituna.extract(carrier)
T.eq(ctx.trace_id, carrier.traceparent:sub(4, 35), "extract gives the trace id")
T.check(ctx.is_remote, "extracted context is remote")
local ctx2 = ituna.extract({ TraceParent = carrier.traceparent, tracestate = "vendor=abc" })
T.eq(ctx2 and ctx2.tracestate, "vendor=abc", "case-insensitive key and tracestate")
local none, why = ituna.extract({ traceparent = "00-zz-00f067aa0ba902b7-01" })
T.check(none == nil and type(why) == "string" and #why > 0, "a bad traceparent gives nil, reason: " .. tostring(why))
local none2, why2 = ituna.extract({})
T.check(none2 == nil and why2, "missing traceparent gives nil, reason")
local injected = ituna.inject(remote)
T.eq(injected.traceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "inject of an explicit context")
T.raises("bad argument #1 to 'ituna.extract' (table expected, got string)", ituna.extract, "not a table")
-- lengths, not NUL-terminated strings: a trailing NUL makes the value invalid
local tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
T.check(ituna.extract({ traceparent = tp }) ~= nil, "a valid traceparent extracts")
local nul, nulwhy = ituna.extract({ traceparent = tp .. "\0" })
T.check(nul == nil and nulwhy and nulwhy:find("length"), "a trailing NUL is rejected: " .. tostring(nulwhy))
T.eq(ituna.extract_baggage({ baggage = "user=alice,tier=gold%20plus" }).tier, "gold plus", "W3C baggage, decoded")
T.eq(next(ituna.extract_baggage({ baggage = "bad key=1" })), nil, "invalid baggage: empty table")

T.section("init, config and argument errors")
T.raises("bad argument #1 to 'ituna.init' (table expected, got string)", ituna.init, "nope")
T.raises("bad argument #1 to 'ituna.inject' (expected a context table or a span)", ituna.inject, 42)
T.raises("(string expected, got table)", tracer.start_span, tracer, {}, nil)
T.raises("attribute 'x' is a function", tracer.start_span, tracer, "n", { x = print })
T.raises("bad argument #1 to 'ituna.sleep' (seconds out of range)", ituna.sleep, -1)
T.eq(tracer:config("tracer", "service-name"), "lua-api-test", "tracer:config reads a set key")
T.eq(tracer:config("tracer", "sampler"), nil, "tracer:config: unset keys are nil")

T.section("<close> records the error that leaves its scope")
local ok3, err3 = pcall(function()
  local s <close> = tracer:start_span("closed-by-error")
  error("boom")
end)
T.check(not ok3 and tostring(err3):find("boom", 1, true), "the error propagates through <close>")
T.eq(ituna.current_context(), nil, "context restored after <close> on error")
local ok4, err4 = pcall(function()
  local s <close> = tracer:start_span("closed-by-error-object")
  error(errobj)
end)
T.check(not ok4 and rawequal(err4, errobj), "an error object passes through <close> unchanged")
do
  local s <close> = tracer:start_span("closed-normally")
end

T.section("__gc ends leaked spans exactly once")
local leaked_id
do
  local leaked = tracer:start_span("leaked") -- no <close>: the collector ends it
  leaked_id = leaked:context().span_id
  leaked:finish() -- the explicit end; __gc later must not end it again
end
do
  local gc_only = tracer:start_span("gc-only")
  ituna.current_context() -- (it is current until ended)
  gc_only = nil
end
collectgarbage(); collectgarbage()
T.eq(ituna.current_context(), nil, "the collected span left the context stack")

local stats = tracer:stats()
T.eq(stats.spans_started, stats.spans_ended, "every started span ended")
T.check(ituna.shutdown(5), "shutdown")
T.check(ituna.tracer() == nil, "no tracer after shutdown")
T.raises("no tracer; call ituna.init", ituna.producer, {})

T.section("exported spans")
local spans = T.read_spans(path)
local counts = {}
for _, s in ipairs(spans) do counts[s.name] = (counts[s.name] or 0) + 1 end
for _, name in ipairs { "outer", "inner", "deep", "methods-renamed", "kept", "failing", "failing-object",
  "child-of-remote", "new-root", "inject-here", "leaked", "gc-only", "closed-by-error",
  "closed-by-error-object", "closed-normally", "nul-bytes" } do
  T.eq(counts[name], 1, "exported exactly once: " .. name)
end
T.eq(#spans, stats.spans_ended, "file holds every ended span, no duplicates")

local nb = T.find(spans, "nul-bytes")
T.eq(T.attr(nb, "v"), "a\0b", "a NUL inside a value reaches OTLP whole")
T.eq(T.attr(nb, "tail"), "end\0", "a trailing NUL is kept")
local items = {}
for _, x in ipairs(T.attr(nb, "arr").values) do items[#items + 1] = x.stringValue end
T.eq(table.concat(items, "|"), "x\0y||\0", "string-array items keep their NUL bytes")
local ek = {}
for _, x in ipairs(T.attr(nb.events[1], "ek").values) do ek[#ek + 1] = x.stringValue end
T.eq(table.concat(ek, "|"), "p\0|q", "an event's string array too")
T.eq(#nb.attributes, 3, "no attribute under a cut key")
local outer = T.find(spans, "outer")
local inner = T.find(spans, "inner")
local deep = T.find(spans, "deep")
T.eq(outer.parentSpanId or "", "", "outer is a root")
T.eq(inner.parentSpanId, outer.spanId, "inner's parent is outer")
T.eq(deep.parentSpanId, inner.spanId, "deep's parent is inner")
T.eq(T.attr(outer, "a"), 1, "int attribute")
T.eq(T.attr(outer, "b"), "x", "string attribute")
T.eq(T.attr(inner, "f"), 1.5, "double attribute")
T.eq(T.attr(inner, "yes"), true, "bool attribute")
T.eq(#T.attr(inner, "arr").values, 3, "int array attribute")
T.eq(T.attr(inner, "sarr").values[2].stringValue, "q", "string array attribute")
T.eq(outer.service, "lua-api-test", "resource service.name")

local m = T.find(spans, "methods-renamed")
T.eq(m.kind, 4, "kind producer")
T.eq(T.attr(m, "k.int"), 42, "set_attribute int")
T.eq(T.attr(m, "k.bool"), false, "set_attribute bool")
T.eq(m.status and m.status.code, 2, "status error")
T.eq(m.status and m.status.message, "bad thing", "status description")
local evnames = {}
for _, e in ipairs(m.events or {}) do evnames[#evnames + 1] = e.name end
T.eq(table.concat(evnames, ","), "ev,plain,exception", "events in order")
T.eq(T.attr(m.events[3], "exception.message"), "something odd", "record_exception message")
T.eq(#(m.links or {}), 1, "one link")
T.eq(m.links[1].spanId, outer.spanId, "link to outer")

local f = T.find(spans, "failing")
T.eq(f.status and f.status.code, 2, "error inside tracer:span marks the span error")
T.check(f.status.message:find("kaboom", 1, true), "status carries the message")
local exc = f.events and f.events[1]
T.eq(exc and exc.name, "exception", "exception event recorded")
T.check(exc and tostring(T.attr(exc, "exception.stacktrace")):find("stack traceback", 1, true),
  "exception event carries the Lua traceback")
local fo = T.find(spans, "failing-object")
T.eq(fo.status and fo.status.message, "custom error object", "error objects are described by __tostring")

local cbe = T.find(spans, "closed-by-error")
T.eq(cbe and cbe.status and cbe.status.code, 2, "<close> on error marks the span error")
T.check(cbe and cbe.status and tostring(cbe.status.message):find("boom", 1, true), "status carries the error message")
local cexc = cbe and cbe.events and cbe.events[1]
T.eq(cexc and cexc.name, "exception", "<close> on error records an exception event")
T.check(cexc and tostring(T.attr(cexc, "exception.message")):find("boom", 1, true), "exception.message is the error")
local cbo = T.find(spans, "closed-by-error-object")
T.eq(cbo and cbo.status and cbo.status.message, "custom error object", "<close>: error object described by __tostring")
local cn = T.find(spans, "closed-normally")
T.check(cn and (cn.status == nil or (cn.status.code or 0) ~= 2), "<close> on normal exit leaves the status unset")
T.eq(cn and #(cn.events or {}), 0, "<close> on normal exit records no event")

local cr = T.find(spans, "child-of-remote")
T.eq(cr.parentSpanId, remote.span_id, "explicit remote parent")
T.eq(cr.kind, 5, "kind consumer")
T.eq(T.find(spans, "new-root").parentSpanId or "", "", "root option")

T.done()
