-- test_scenarios.lua - the Lua runner of the lifecycle scenario table
-- (tests/scenarios/lifecycle.json), which the C and Python runners read too: each
-- scenario's messages through consumer:each() on the real broker, the handler doing
-- what the table says at each attempt, then the outcomes (handler runs, DLQ, copies
-- published), the CONSUMER spans (status and error.type per attempt) and the
-- commits (what the same group gets again) checked against the table.
-- Needs ITUNA_TEST_KAFKA=host:port; without it the test says why and is skipped,
-- except under CI=true where a missing broker fails.
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
local f = assert(io.open(dir .. "/../scenarios/lifecycle.json"))
local table_ = T.json_decode(f:read("a"))
f:close()

-- values consumed from topic by a fresh group, until idle seconds pass without one
local function drain(topic, idle)
  local c = ituna.consumer { bootstrap = bootstrap, group = topic .. "-check-" .. math.random(1, 1e9),
    topics = { topic }, ["auto.offset.reset"] = "earliest" }
  local got = {}
  c:each(function(msg) got[#got + 1] = msg.value end, { idle = idle })
  c:close()
  return got
end

local function run(sc, n)
  T.section(sc.name)
  local path = T.tmpfile("scenario.jsonl")
  local opts = T.file_tracer_opts("lua-scenarios", path)
  for k, v in pairs(sc.config or {}) do opts[k] = v end
  local tracer = ituna.init(opts)
  local input = ("lua-sc-%d-%d-%d"):format(n, os.time(), math.random(1, 1e9))
  local out, bad = input .. "-out", input .. "-out!bad" -- '!': the broker refuses the name
  local group = input .. "-g"

  local p = ituna.producer { bootstrap = bootstrap }
  for _, v in ipairs(sc.messages) do p:publish(input, v, { key = v, partition = 0 }) end
  p:flush(30)
  p:close()

  local hp = ituna.producer { bootstrap = bootstrap }
  local c = ituna.consumer { bootstrap = bootstrap, group = group, topics = { input },
    ["auto.offset.reset"] = "earliest" }
  T.check(c:wait_assigned(30), "the consumer is assigned")
  local runs, value_at = {}, {}
  c:each(function(msg)
    local v = msg.value
    runs[v] = (runs[v] or 0) + 1
    value_at[msg.offset] = v
    T.eq(msg.attempt, runs[v], v .. ": msg.attempt counts the handler runs")
    local plan = sc.handler[v]
    local step = plan[math.min(runs[v], #plan)]
    if step == "raise" then
      error("scenario: raised at attempt " .. runs[v])
    elseif step == "malformed" then
      error(ituna.malformed("scenario: malformed"))
    elseif step == "stop" then
      c:stop()
    elseif type(step) == "table" then
      for _, kind in ipairs(step.publish) do hp:publish(kind == "good" and out or bad, v, { key = v }) end
      -- the failure of a publish made for this message is the message's, never raised here
      hp:flush(10)
    else
      T.eq(step, "ok", "a step the runner knows")
    end
  end, { idle = 5 })
  c:close()
  local ok, err = pcall(hp.close, hp, 10)
  T.check(ok, "no delivery failure is left for the producer to raise: " .. tostring(err))

  for v, want in pairs(sc.expect.runs) do T.eq(runs[v] or 0, want, v .. ": handler runs") end
  T.eq(table.concat(drain(input .. ".dlq", 4), ","), table.concat(sc.expect.dlq, ","), "dead-lettered")
  if sc.expect.out > 0 then T.eq(#drain(out, 4), sc.expect.out, "copies published to " .. out) end

  T.check(tracer:flush(10), "spans flushed")
  local spans, seen = {}, {}
  for _, s in ipairs(T.read_spans(path)) do
    if s.name == "process " .. input then
      local v = value_at[T.attr(s, "messaging.kafka.offset")] or "?"
      local attempt = T.attr(s, "ituna.delivery.attempt") or 1
      seen[#seen + 1] = ("%s#%d"):format(v, attempt)
      spans[seen[#seen]] = s
    end
  end
  T.eq(#seen, #sc.expect.spans, "CONSUMER spans: " .. table.concat(seen, " "))
  for _, want in ipairs(sc.expect.spans) do
    local key = ("%s#%d"):format(want.value, want.attempt)
    local s = spans[key]
    if T.check(s, key .. ": a CONSUMER span") then
      local code = s.status and s.status.code or 0
      T.eq(code == 2 and "error" or "unset", want.status, key .. ": status")
      if want["error.type"] then T.eq(T.attr(s, "error.type"), want["error.type"], key .. ": error.type") end
    end
  end

  -- the commits: the same group gets exactly what was never handled
  local again = ituna.consumer { bootstrap = bootstrap, group = group, topics = { input },
    ["auto.offset.reset"] = "earliest" }
  local got = {}
  again:each(function(msg) got[#got + 1] = msg.value end, { idle = 4 })
  again:close()
  T.eq(table.concat(got, ","), table.concat(sc.expect.again, ","), "what the same group gets again")
  ituna.shutdown(5)
end

for n, sc in ipairs(table_.scenarios) do run(sc, n) end
T.done()
