-- kafka_roundtrip.lua - one Kafka round trip through the Lua module, shared by
-- the embedded-broker test and the real-broker test: publish (string and JSON
-- table, key, headers, on_delivery), consume with messages() and each(), the
-- CONSUMER span current in the body, commit on success, redelivery on error,
-- DLQ on ituna.malformed (from msg:json() and raised by the body, with the
-- reason header checked), nothing redelivered after a clean close; then the
-- exported spans: one trace per message across producer and consumer.
local T = require "testlib"
local ituna = require "ituna"

local M = {}

function M.run(bootstrap, label)
  local path = T.tmpfile("kafka-" .. label .. ".jsonl")
  local tracer = ituna.init(T.file_tracer_opts("lua-kafka-" .. label, path))
  local suffix = ("%d%d"):format(os.time(), math.random(1, 1e6))
  local topic = "lua-rt-" .. suffix
  local group = "lua-rt-group-" .. suffix
  local common = { bootstrap = bootstrap, group = group, topics = { topic }, ["auto.offset.reset"] = "earliest" }

  T.section(label .. ": publish")
  local reports = {}
  local producer = ituna.producer {
    bootstrap = bootstrap,
    on_delivery = function(r) reports[#reports + 1] = r end,
  }
  local place_ctx
  tracer:span("place-order", { ["order.id"] = "o-1" }, function(span)
    place_ctx = span:context()
    producer:publish(topic, { order_id = "o-1", dishes = { "maki", "sashimi" }, count = 2, ok = true, price = 9.5 },
      { key = "o-1", headers = { ["x-source"] = "website" } })
  end)
  producer:publish(topic, "second, plain text", { key = "o-2" })
  producer:publish(topic, "{not json", { key = "o-3" })
  producer:publish(topic, "will fail once", { key = "o-4" })
  producer:flush(30)
  T.eq(#reports, 4, "on_delivery called once per message")
  for _, r in ipairs(reports) do
    T.eq(r.error, nil, "delivered: " .. tostring(r.error))
    T.check(r.offset >= 0 and r.partition >= 0, "report has partition and offset")
    T.eq(r.topic, topic, "report topic")
  end
  T.raises("cannot encode", producer.publish, producer, topic, { f = print })
  T.raises("bad argument #3", producer.publish, producer, topic, 42)
  T.raises("headers must map strings to strings", producer.publish, producer, topic, "x", { headers = { n = 1 } })

  T.section(label .. ": messages() loop")
  local consumer = ituna.consumer(common)
  local seen, values, failed_once, bodies = {}, {}, false, 0
  local function loop()
    for msg in consumer:messages { idle = 15 } do
      bodies = bodies + 1
      local cur = ituna.current_context()
      T.check(cur and cur.span_id == msg:context().span_id, "the CONSUMER span is current in the body")
      T.eq(msg.topic, topic, "msg.topic")
      T.check(msg.headers.traceparent, "traceparent header travels")
      values[msg.key] = msg.value
      if msg.key == "o-1" then
        local order = msg:json()
        T.eq(order.order_id, "o-1", "json: string")
        T.eq(order.count, 2, "json: integer")
        T.eq(math.type(order.count), "integer", "json: integral numbers decode as integers")
        T.eq(order.price, 9.5, "json: float")
        T.eq(order.ok, true, "json: boolean")
        T.eq(order.dishes[2], "sashimi", "json: array")
        T.eq(msg.headers["x-source"], "website", "custom header")
        T.eq(cur.trace_id, place_ctx.trace_id, "consumer continues the producer's trace")
        tracer:span("handle-order", function() end)
        msg:span():set_attribute("handled.by", "lua")
      elseif msg.key == "o-3" then
        msg:json() -- raises ituna.malformed: the loop sends it to the DLQ
      elseif msg.key == "o-4" and not failed_once then
        T.eq(msg.attempt, 1, "msg.attempt: the first delivery")
        failed_once = true
        error("transient failure")
      elseif msg.key == "o-4" then
        T.eq(msg.attempt, 2, "msg.attempt: the redelivery after the error is the second")
      end
      seen[#seen + 1] = msg.key .. "@" .. msg.offset
      if #seen == 3 then break end -- o-1, o-2, o-4 (after its redelivery), in partition order
    end
  end
  -- a service re-enters the loop after an error, as here
  local errors = {}
  for _ = 1, 4 do
    local ok, err = pcall(loop)
    if ok then break end
    errors[#errors + 1] = err
  end
  T.eq(#seen, 3, "three messages handled: " .. table.concat(seen, " "))
  T.eq(#errors, 2, "two errors left the loop (malformed, transient)")
  local kinds = {}
  for _, e in ipairs(errors) do kinds[#kinds + 1] = tostring(e):match("malformed") or tostring(e):match("transient failure") end
  table.sort(kinds)
  T.eq(table.concat(kinds, ","), "malformed,transient failure", "the errors propagate as raised")
  T.eq(values["o-2"], "second, plain text", "plain value")
  T.check(failed_once, "o-4 failed once")
  T.eq(bodies, 5, "o-4 was redelivered after the error (5 bodies ran for 4 messages)")
  consumer:close()
  T.raises("consumer is closed", consumer.messages, consumer)
  T.raises("consumer is closed", consumer.poll, consumer)
  consumer:close() -- idempotent

  T.section(label .. ": committed: the group gets nothing again")
  local again = ituna.consumer(common)
  local redelivered = again:each(function(msg) error("unexpected redelivery of " .. msg.key) end, { idle = 6 })
  T.eq(redelivered, 0, "no message redelivered after commit")
  again:close()

  T.section(label .. ": the DLQ got the malformed message")
  local dlq = ituna.consumer { bootstrap = bootstrap, group = group .. "-dlq", topics = { topic .. ".dlq" },
    ["auto.offset.reset"] = "earliest" }
  local dlq_msgs = {}
  dlq:each(function(msg) dlq_msgs[#dlq_msgs + 1] = msg end, { max = 1, idle = 20 })
  T.eq(#dlq_msgs, 1, "one message in the DLQ")
  dlq:close()

  T.section(label .. ": each() goes on after errors")
  local topic2 = topic .. "-each"
  for i = 1, 3 do producer:publish(topic2, "m" .. i, { key = "k" }) end
  producer:flush(30)
  local c2 = ituna.consumer { bootstrap = bootstrap, group = group .. "-each", topics = { topic2 },
    ["auto.offset.reset"] = "earliest" }
  local got, raised = {}, false
  local n = c2:each(function(msg)
    if msg.value == "m2" and not raised then
      raised = true
      error("each: once")
    end
    got[#got + 1] = msg.value
    if #got == 3 then c2:stop() end
  end, { idle = 15 })
  T.eq(table.concat(got, ","), "m1,m2,m3", "each: m2 redelivered after its error, order kept")
  T.eq(n, 4, "each counts every handler run")
  c2:close()

  T.section(label .. ": error(ituna.malformed(reason)) in a messages() body goes to the DLQ")
  local topic3 = topic .. "-mal"
  producer:publish(topic3, "no order id here", { key = "k", partition = 0 })
  producer:publish(topic3, "fine", { key = "k", partition = 0 })
  producer:flush(30)
  local c3 = ituna.consumer { bootstrap = bootstrap, group = group .. "-mal", topics = { topic3 },
    ["auto.offset.reset"] = "earliest" }
  local bad_offset, got3, left_with = nil, {}, nil
  for _ = 1, 3 do
    local ok, err = pcall(function()
      for msg in c3:messages { idle = 15 } do
        if msg.value == "no order id here" then
          bad_offset = msg.offset
          error(ituna.malformed("order has no order_id"))
        end
        got3[#got3 + 1] = msg.value
        if #got3 == 1 then break end
      end
    end)
    if ok then break end
    left_with = err
  end
  T.check(type(left_with) == "table" and left_with.reason == "order has no order_id",
    "the malformed error object propagates out of the loop: " .. tostring(left_with))
  T.eq(table.concat(got3, ","), "fine", "the loop goes on after the DLQ'd message, which is not redelivered")
  c3:close()
  local d3 = ituna.consumer { bootstrap = bootstrap, group = group .. "-mal-dlq", topics = { topic3 .. ".dlq" },
    ["auto.offset.reset"] = "earliest" }
  local dlq3 = {}
  d3:each(function(msg)
    dlq3[#dlq3 + 1] = { value = msg.value, headers = msg.headers }
  end, { max = 1, idle = 20 })
  d3:close()
  T.eq(#dlq3, 1, "one message in " .. topic3 .. ".dlq")
  if dlq3[1] then
    local h = dlq3[1].headers
    T.eq(dlq3[1].value, "no order id here", "the DLQ holds the original payload")
    T.eq(h["ituna.dlq.reason"], "order has no order_id", "the reason header")
    T.eq(h["ituna.dlq.topic"], topic3, "the origin topic header")
    T.eq(h["ituna.dlq.partition"], "0", "the origin partition header")
    T.eq(h["ituna.dlq.offset"], tostring(bad_offset), "the origin offset header")
  end
  producer:close()
  T.raises("producer is closed", producer.publish, producer, topic, "x")

  T.section(label .. ": exported spans")
  local stats = tracer:stats()
  T.check(ituna.shutdown(10), "shutdown flushes")
  local spans = T.read_spans(path)
  T.eq(#spans, stats.spans_ended, "every ended span exported once")
  local place = T.find(spans, "place-order")
  local _, sends = T.find(spans, "send " .. topic)
  local _, processes = T.find(spans, "process " .. topic)
  T.eq(#sends, 4, "four PRODUCER spans")
  T.eq(#processes, 5, "five CONSUMER spans (one redelivery)")
  local send1
  for _, s in ipairs(sends) do
    T.eq(s.kind, 4, "send is PRODUCER")
    if s.parentSpanId == place.spanId then send1 = s end
  end
  T.check(send1, "the first send is a child of place-order")
  local proc1
  for _, s in ipairs(processes) do
    T.eq(s.kind, 5, "process is CONSUMER")
    if send1 and s.parentSpanId == send1.spanId then proc1 = s end
  end
  T.check(proc1, "a CONSUMER span's parent is the PRODUCER span")
  if proc1 then
    T.eq(proc1.traceId, place.traceId, "one trace from place-order to process")
    T.eq(T.attr(proc1, "handled.by"), "lua", "msg:span() sets attributes on the CONSUMER span")
    T.eq(T.find(spans, "handle-order").parentSpanId, proc1.spanId, "spans in the body nest under process")
  end
  local errored = 0
  for _, s in ipairs(processes) do
    if s.status and s.status.code == 2 then errored = errored + 1 end
  end
  T.eq(errored, 2, "the malformed and the failed message have error status")
  local _, procs3 = T.find(spans, "process " .. topic .. "-mal")
  T.eq(#procs3, 2, "two CONSUMER spans for the malformed section")
  local mal
  for _, s in ipairs(procs3) do if s.status and s.status.code == 2 then mal = s end end
  T.eq(mal and mal.status.message, "order has no order_id", "the DLQ'd message's span: error status with the reason")
  T.eq(mal and T.attr(mal, "ituna.dlq.topic"), topic .. "-mal.dlq", "the span names the DLQ topic")
end

return M
