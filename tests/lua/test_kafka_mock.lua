-- test_kafka_mock.lua - the Lua Kafka round trip on the embedded broker
-- (librdkafka's built-in Kafka-protocol test cluster, started through the core).
local T = require "testlib"
local ituna = require "ituna"

local broker = ituna.start_embedded_broker { brokers = 1, partitions = 4 }
T.check(broker.bootstrap:match("^127%.0%.0%.1:%d+"), "bootstrap address: " .. broker.bootstrap)
require("kafka_roundtrip").run(broker.bootstrap, "mock")
broker:stop()
broker:stop() -- idempotent
T.raises("embedded broker is stopped", function() return broker.bootstrap end)
T.done()
