-- run_scenarios.lua - the Lua runner of the consumer-loop scenario table
-- (kafka_scenarios.json beside it; the C host and the Python binding run the same
-- table): each scenario through `for msg in consumer:messages{idle = 5}` on the real
-- broker, the handler doing what the table says at each attempt, then what it
-- records (attempts' CONSUMER spans, handler runs, the failures a flush reported,
-- copies out and in the DLQ, what a fresh member of the group reads first) must
-- equal the table's expect. Prints one JSON-ish line per scenario. Needs
-- ITUNA_TEST_KAFKA=host:port; without it the test says why and is skipped, except
-- under CI=true where a missing broker fails.
local T = require "testlib"
local ituna = require "ituna"

local bootstrap = os.getenv("ITUNA_TEST_KAFKA")
if not bootstrap or bootstrap == "" then
  local why = "ITUNA_TEST_KAFKA is not set (start a broker with tools/kafka.sh and export its address)"
  if os.getenv("CI") == "true" then
    io.stderr:write("FAIL: ", why, "; CI=true requires the scenario table on the real broker\n")
    os.exit(1)
  end
  io.write("SKIP: ", why, "\n")
  os.exit(77)
end

local dir = debug.getinfo(1, "S").source:match("^@(.*)/[^/]+$")
local f = assert(io.open(dir .. "/kafka_scenarios.json"))
local TABLE = T.json_decode(f:read("a"))
f:close()
local BIG = ("x"):rep(1500000) -- within the producer's message.max.bytes, beyond the broker's

-- values in topic for a fresh group (the first only, or all until idle seconds pass)
local function read(topic, first_only, idle)
  local c = ituna.consumer { bootstrap = bootstrap, group = "g-read-" .. math.random(1, 1e9), topics = { topic },
    ["auto.offset.reset"] = "earliest" }
  local got = {}
  c:each(function(msg) got[#got + 1] = msg.value end, first_only and { max = 1, idle = 30 } or { idle = idle or 4 })
  c:close()
  return got
end

-- span ids of the send spans made under the CONSUMER span parent, in publish order
local function sends_under(tracer, path, parent)
  tracer:flush(10)
  local sends = {}
  for _, s in ipairs(T.read_spans(path)) do
    if s.parentSpanId == parent and s.name:sub(1, 5) == "send " then sends[#sends + 1] = s end
  end
  table.sort(sends, function(a, b) return tonumber(a.startTimeUnixNano) < tonumber(b.startTimeUnixNano) end)
  local ids = {}
  for i, s in ipairs(sends) do ids[i] = s.spanId end
  return ids
end

local function run(sc)
  local path = T.tmpfile("scenarios.jsonl")
  local opts = T.file_tracer_opts("scenarios-lua", path)
  opts["messaging.max-redeliveries"] = sc.max_redeliveries or 9
  local tracer = ituna.init(opts)
  local tag = ("%d%d"):format(os.time(), math.random(1, 1e9))
  local topic, out, group = ("sc-lua-%s-%s"):format(sc.name:sub(1, 20), tag), "sc-lua-out-" .. tag, "g-sc-" .. tag
  local got = { handled = 0, failed_publishes_seen = {} }
  local p = ituna.producer { bootstrap = bootstrap, ["linger.ms"] = 1 }
  for _, v in ipairs(sc.input) do p:publish(topic, v, { partition = 0 }) end
  p:flush(30)
  p:close()

  local hp = ituna.producer { bootstrap = bootstrap, ["linger.ms"] = 1, ["message.max.bytes"] = 3000000,
    ["message.timeout.ms"] = 10000 }
  local c = ituna.consumer { bootstrap = bootstrap, group = group, topics = { topic },
    ["auto.offset.reset"] = "earliest" }
  T.check(c:wait_assigned(30), sc.name .. ": assigned")
  local done = false
  local function body(msg)
    local step = sc.handler[math.min(got.handled + 1, #sc.handler)]
    got.handled = got.handled + 1
    for _, kind in ipairs(step.publish or {}) do
      hp:publish(out, kind == "too_large" and BIG or { order = msg.value })
    end
    local seen -- nil: no flush
    if step.flush then
      seen = {}
      local ok, err = pcall(hp.flush, hp, 30)
      if not ok then -- only this message's own publishes
        T.check(type(err) == "table" and err.reports, "a flush error lists its reports: " .. tostring(err))
        local failed = {}
        for _, r in ipairs(type(err) == "table" and err.reports or {}) do failed[r.span_id] = true end
        for i, id in ipairs(sends_under(tracer, path, msg:context().span_id)) do
          if failed[id] then seen[#seen + 1] = i - 1 end
        end
      end
    end
    got.failed_publishes_seen[got.handled] = seen
    if step["then"] == "raise" then error("kitchen on fire", 0) end
    if step["then"] == "malformed" then error(ituna.malformed("not an order")) end
    if step["then"] == "stop" then c:stop() end
    if got.handled >= #sc.expect.attempts then done = true end
  end
  while not done do
    local ok, err = pcall(function()
      for msg in c:messages { idle = 5 } do
        body(msg)
        if done then break end
      end
      done = true -- idle or stopped
    end)
    if not ok and err ~= "kitchen on fire" and not tostring(err):find("not an order", 1, true) then
      T.check(false, sc.name .. ": unexpected error " .. tostring(err))
      done = true
    end
  end
  c:close()
  hp:flush(30)
  hp:close()

  p = ituna.producer { bootstrap = bootstrap }
  p:publish(topic, "end", { partition = 0 })
  p:flush(30)
  p:close()
  local probe
  local again = ituna.consumer { bootstrap = bootstrap, group = group, topics = { topic } }
  local m = again:poll(30)
  got.next_member_first = m and m.value
  if m then
    probe = m:context().span_id
    m:done("error")
  end
  again:close()
  got.out = #read(out)
  got.dlq = #read(topic .. ".dlq", false, 3)

  tracer:flush(10)
  local procs = {}
  for _, s in ipairs(T.read_spans(path)) do
    if s.name == "process " .. topic and T.attr(s, "messaging.consumer.group.name") == group and s.spanId ~= probe then
      procs[#procs + 1] = s
    end
  end
  table.sort(procs, function(a, b) return tonumber(a.startTimeUnixNano) < tonumber(b.startTimeUnixNano) end)
  got.attempts = {}
  for i, s in ipairs(procs) do
    got.attempts[i] = { status = s.status and s.status.code == 2 and "error" or "ok",
      error_type = T.attr(s, "error.type"), dlq = T.attr(s, "ituna.dlq.topic") ~= nil }
  end
  ituna.shutdown(5)
  return got
end

local function list(t, n)
  if t == nil then return "null" end
  local parts = {}
  for i = 1, n or #t do parts[i] = tostring(t[i]) end
  return "[" .. table.concat(parts, ",") .. "]"
end

for _, sc in ipairs(TABLE.scenarios) do
  T.section(sc.name)
  local got, exp = run(sc), sc.expect
  T.eq(#got.attempts, #exp.attempts, sc.name .. ": CONSUMER spans")
  for i, e in ipairs(exp.attempts) do
    local g = got.attempts[i] or {}
    T.eq(g.status, e.status, sc.name .. ": attempt " .. i .. " status")
    T.eq(g.dlq, e.dlq, sc.name .. ": attempt " .. i .. " dead-lettered")
    if e.error_type ~= nil then T.eq(g.error_type, e.error_type, sc.name .. ": attempt " .. i .. " error.type") end
  end
  for _, k in ipairs { "handled", "out", "dlq", "next_member_first" } do
    if exp[k] ~= nil then T.eq(got[k], exp[k], sc.name .. ": " .. k) end
  end
  if exp.failed_publishes_seen then
    for i = 1, got.handled do
      T.eq(list(got.failed_publishes_seen[i]), list(exp.failed_publishes_seen[i]),
        sc.name .. ": failures the flush of attempt " .. i .. " reported")
    end
  end
  io.write(('{"name": "%s", "got": {"handled": %d, "out": %d, "dlq": %d, "next_member_first": "%s"}}\n')
    :format(sc.name, got.handled, got.out, got.dlq, tostring(got.next_member_first)))
end
T.done()
