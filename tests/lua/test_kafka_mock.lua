-- test_kafka_mock.lua - the Lua Kafka round trip on the embedded broker
-- (librdkafka's built-in Kafka-protocol test cluster, started through the core).
local T = require "testlib"
local ituna = require "ituna"

local broker = ituna.start_embedded_broker { brokers = 1, partitions = 4 }
T.check(broker.bootstrap:match("^127%.0%.0%.1:%d+"), "bootstrap address: " .. broker.bootstrap)
require("kafka_roundtrip").run(broker.bootstrap, "mock")

T.section("mock: partition assignment")
do
  local path = T.tmpfile("kafka-assign.jsonl")
  ituna.init(T.file_tracer_opts("lua-kafka-assign", path))
  local suffix = ("%d%d"):format(os.time(), math.random(1, 1e6))
  local topic = "lua-assign-" .. suffix
  local n = 30
  local producer = ituna.producer { bootstrap = broker.bootstrap }
  for i = 1, n do producer:publish(topic, "m" .. i, { key = "k" .. i }) end
  producer:flush(30)
  producer:close()
  local consumer = ituna.consumer { bootstrap = broker.bootstrap, group = "lua-assign-" .. suffix, topics = { topic },
                                    ["auto.offset.reset"] = "earliest" }
  T.eq(consumer:assignment_count(), 0, "nothing assigned before the consumer is polled")
  T.raises("seconds from 0 to 86400 expected", consumer.wait_assigned, consumer, -1)
  T.raises("number expected", consumer.wait_assigned, consumer)
  T.eq(consumer:wait_assigned(30), true, "wait_assigned: partitions assigned")
  T.eq(consumer:assignment_count(), 4, "one member gets the 4 partitions")
  T.eq(consumer:wait_assigned(0), true, "already assigned: true at once")
  -- no message polled while waiting is lost: all n arrive, each once
  local seen, count = {}, 0
  for msg in consumer:messages { idle = 5 } do
    if not seen[msg.value] then count = count + 1 end
    seen[msg.value] = true
    if count == n then break end
  end
  T.eq(count, n, "every message arrives after wait_assigned")
  consumer:stop()
  T.eq(consumer:wait_assigned(5), true, "assigned members answer true even after stop()")
  consumer:close()
  T.eq(consumer:assignment_count(), 0, "a closed consumer has no partitions")
  T.raises("consumer is closed", consumer.wait_assigned, consumer, 1)

  -- a stop request ends the wait with false
  local c2 = ituna.consumer { bootstrap = broker.bootstrap, group = "lua-assign2-" .. suffix, topics = { topic } }
  c2:stop()
  local t0 = os.time()
  T.eq(c2:wait_assigned(30), false, "stop() ends the wait")
  T.check(os.time() - t0 <= 3, "promptly")
  c2:close()
  ituna.shutdown(5)
end

T.section("mock: OTEL_PROPAGATORS picks the headers; W3C baggage readable with msg:baggage()")
do
  local path = T.tmpfile("kafka-b3.jsonl")
  local opts = T.file_tracer_opts("lua-kafka-b3", path)
  opts["tracer.propagators"] = "b3multi,baggage"
  local tracer = ituna.init(opts)
  local topic = ("lua-b3-%d%d"):format(os.time(), math.random(1, 1e6))
  local producer = ituna.producer { bootstrap = broker.bootstrap }
  local sent
  tracer:span("origin", function(s)
    sent = s:context()
    producer:publish(topic, "x", { headers = { baggage = "user=alice,tier=gold%20plus" } })
  end)
  producer:flush(30)
  producer:close()
  local consumer = ituna.consumer { bootstrap = broker.bootstrap, group = topic, topics = { topic },
                                    ["auto.offset.reset"] = "earliest" }
  for msg in consumer:messages { idle = 10 } do
    T.eq(msg.headers.traceparent, nil, "no traceparent: tracecontext is not in the set")
    T.check(msg.headers["X-B3-TraceId"] == sent.trace_id, "X-B3-TraceId header")
    T.eq(msg:context().trace_id, sent.trace_id, "the consumer continues the trace from the b3 headers")
    local bag = msg:baggage()
    T.eq(bag.user, "alice", "baggage entry")
    T.eq(bag.tier, "gold plus", "baggage value decoded")
    break
  end
  consumer:close()
  ituna.shutdown(5)
end

T.section("mock: publish attributes land on the send span")
do
  local path = T.tmpfile("kafka-attrs.jsonl")
  ituna.init(T.file_tracer_opts("lua-kafka-attrs", path))
  local topic = ("lua-attrs-%d%d"):format(os.time(), math.random(1, 1e6))
  local producer = ituna.producer { bootstrap = broker.bootstrap }
  local attrs = { ["order.id"] = "o-5", ["order.source"] = "on-site", ["order.items"] = 2 }
  producer:publish(topic, { order_id = "o-5" }, { key = "o-5", attributes = attrs })
  producer:publish(topic, "plain")
  T.raises("attributes must be a table", producer.publish, producer, topic, "x", { attributes = "order.id" })
  T.raises("attribute 'order.id' is a function", producer.publish, producer, topic, "x",
    { attributes = { ["order.id"] = print } })
  T.raises("key is empty", producer.publish, producer, topic, "x", { attributes = { [""] = "x" } })
  T.raises("key contains a NUL byte", producer.publish, producer, topic, "x", { attributes = { ["k\0"] = "x" } })
  producer:flush(30)
  producer:close()
  T.check(ituna.shutdown(10), "shutdown flushes")
  local _, sends = T.find(T.read_spans(path), "send " .. topic)
  T.eq(#sends, 2, "two PRODUCER spans (the refused publishes made none)")
  local with, without
  for _, s in ipairs(sends) do
    if T.attr(s, "order.id") then with = s else without = s end
  end
  T.check(with and without, "one send span has the attributes, the other has none")
  if with then
    T.eq(T.attr(with, "order.id"), "o-5", "order.id on the send span")
    T.eq(T.attr(with, "order.source"), "on-site", "order.source on the send span")
    T.eq(T.attr(with, "order.items"), 2, "integer attribute")
    T.eq(T.attr(with, "messaging.destination.name"), topic, "messaging attributes kept")
  end
end
T.section("mock: ituna.stop() stops every consumer, those made after it too")
do
  ituna.init(T.file_tracer_opts("lua-kafka-stop-all", T.tmpfile("kafka-stop-all.jsonl")))
  local before = ituna.consumer { bootstrap = broker.bootstrap, group = "lua-stop-all-1", topics = { "lua-stop-all" } }
  ituna.stop()
  local after = ituna.consumer { bootstrap = broker.bootstrap, group = "lua-stop-all-2", topics = { "lua-stop-all" } }
  local t0 = ituna.now()
  T.eq(before:wait_assigned(20), false, "a waiting consumer gives up")
  local n = 0
  for _ in after:messages() do n = n + 1 end -- no idle: only the stop ends it
  T.eq(n, 0, "a consumer made later takes no message")
  T.eq(after:each(function() n = n + 1 end), 0, "nor does each(), which resumes only its own stop")
  T.check(ituna.now() - t0 < 5e9, "promptly")
  T.eq(ituna.running(), false, "ituna.running() is false")
  before:close()
  after:close()
  ituna.shutdown(5)
end
broker:stop()
broker:stop() -- idempotent
T.raises("embedded broker is stopped", function() return broker.bootstrap end)
T.done()
