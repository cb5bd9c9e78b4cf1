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
broker:stop()
broker:stop() -- idempotent
T.raises("embedded broker is stopped", function() return broker.bootstrap end)
T.done()
