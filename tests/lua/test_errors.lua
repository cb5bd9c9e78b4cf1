-- test_errors.lua - bad input gets a clear Lua error carrying the core's
-- message: bad config file, unknown keys, bad values and types in ituna.init;
-- bad producer/consumer options and librdkafka properties; delivery failures
-- raised on flush or handed to on_delivery; closed handles; JSON encoding errors.
local T = require "testlib"
local ituna = require "ituna"

T.section("ituna.init")
T.raises("no-such-file.ini", ituna.init, { config = "/nonexistent/no-such-file.ini" })
T.raises("config must be a file path", ituna.init, { config = 42 })
local ini = T.tmpfile("bad-line.ini")
local f = assert(io.open(ini, "w"))
f:write("[tracer]\nservice-name = a\n[exporter]\nmax-queue-size = many\n")
f:close()
local e = T.raises("max-queue-size", ituna.init, { config = ini })
T.check(tostring(e):find(":4", 1, true), "INI errors name the line: " .. tostring(e))
T.raises("no_such_option", ituna.init, { no_such_option = "x" })
T.raises("expected string, number or boolean", ituna.init, { service_name = {} })
T.raises("option keys must be strings", ituna.init, { "positional" })
T.raises("timeout: expected a non-negative integer", ituna.init, { ["exporter.timeout"] = "soon" })
T.eq(ituna.tracer(), nil, "failed inits leave no tracer")

T.section("INI, then table keys win")
local good = T.tmpfile("good.ini")
f = assert(io.open(good, "w"))
f:write("[tracer]\nservice-name = from-file\n[exporter]\ntype = none\n")
f:close()
local tracer = ituna.init { config = good }
T.eq(tracer:service_name(), "from-file", "service name from the INI file")
ituna.shutdown(2)
tracer = ituna.init { config = good, service_name = "from-table", ["exporter.max-queue-size"] = 64, disabled = false }
T.eq(tracer:service_name(), "from-table", "table keys win over the file")
T.eq(tracer:config("exporter", "max-queue-size"), "64", "numbers are passed as text")
T.eq(tracer:config("tracer", "disabled"), "false", "booleans are passed as true/false")

T.section("producer and consumer options")
T.raises("bad argument #1 to 'ituna.consumer'", ituna.consumer, "x")
T.raises("option 'group'", ituna.consumer, { topics = { "t" }, bootstrap = "127.0.0.1:1" })
T.raises("option 'topics'", ituna.consumer, { group = "g", bootstrap = "127.0.0.1:1" })
T.raises("option 'topics'", ituna.consumer, { group = "g", topics = {}, bootstrap = "127.0.0.1:1" })
T.raises("topics[2] must be a string", ituna.consumer, { group = "g", topics = { "a", 5 }, bootstrap = "127.0.0.1:1" })
T.raises("option 'context'", ituna.consumer, { group = "g", topics = { "a" }, context = "sibling", bootstrap = "127.0.0.1:1" })
T.raises("no.such.property", ituna.producer, { bootstrap = "127.0.0.1:1", ["no.such.property"] = "1" })
T.raises("no.such.property", ituna.consumer, { group = "g", topics = { "a" }, bootstrap = "127.0.0.1:1",
  ["no.such.property"] = "1" })
T.raises("on_delivery must be a function", ituna.producer, { bootstrap = "127.0.0.1:1", on_delivery = 3 })
T.raises("option 'bootstrap' must be a string", ituna.producer, { bootstrap = 5 })

T.section("delivery failures")
-- nothing listens on port 1: every delivery times out after message.timeout.ms
local p = ituna.producer { bootstrap = "127.0.0.1:1", ["message.timeout.ms"] = 1500 }
p:publish("nowhere", "lost?")
local err = T.raises("failed delivery", p.flush, p, 20)
T.check(tostring(err):find("nowhere", 1, true), "the failure names the topic: " .. tostring(err))
T.eq(type(err) == "table" and #err.reports, 1, "the error lists the failed delivery reports")
T.eq(type(err) == "table" and err.reports[1].topic, "nowhere", "a report names its topic")
p:flush(5) -- already raised once: not raised again
p:close()
T.raises("producer is closed", p.flush, p)
p:close() -- idempotent

local reports = {}
local p2 = ituna.producer { bootstrap = "127.0.0.1:1", ["message.timeout.ms"] = 1500,
  on_delivery = function(r) reports[#reports + 1] = r end }
p2:publish("nowhere", "lost?", { key = "k" })
p2:flush(20) -- on_delivery took the failure: no raise
T.eq(#reports, 1, "on_delivery got the failed report")
T.check(reports[1] and reports[1].error, "the report carries the error: " .. tostring(reports[1] and reports[1].error))
T.eq(reports[1] and reports[1].offset, -1, "no offset on failure")
local p3 = ituna.producer { bootstrap = "127.0.0.1:1", ["message.timeout.ms"] = 1500,
  on_delivery = function() error("callback broke") end }
p3:publish("nowhere", "x")
T.raises("callback broke", p3.flush, p3, 20)
p3:close()
p2:close()

T.section("JSON encoding")
local p4 = ituna.producer { bootstrap = "127.0.0.1:1", ["message.timeout.ms"] = 1000,
  on_delivery = function() end }
T.raises("cannot encode value.f", p4.publish, p4, "t", { f = print })
T.raises("nested deeper", p4.publish, p4, "t", (function() local t = {}; t.self = t; return t end)())
T.raises("not a JSON number", p4.publish, p4, "t", { x = 0 / 0 })
T.raises("object key is a boolean", p4.publish, p4, "t", { [true] = 1 })
p4:close(5)

T.section("malformed objects")
local m = ituna.malformed("bad payload")
T.eq(tostring(m), "malformed: bad payload", "tostring")
T.eq(m.reason, "bad payload", "reason field")
T.raises("bad argument #1 to 'ituna.malformed'", ituna.malformed)

T.section("embedded broker")
T.raises("brokers must be 1..16", ituna.start_embedded_broker, { brokers = 0 })
T.raises("partitions must be 1..1024", ituna.start_embedded_broker, { partitions = 0 })

ituna.shutdown(2)
T.done()
