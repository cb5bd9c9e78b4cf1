-- consume.lua: a consumer service on the embedded broker; SIGTERM ends its
-- loop normally (the message in hand is committed) and the script goes on
local ituna = require "ituna"
local marker = assert(arg[1], "marker path")
local broker = ituna.start_embedded_broker { partitions = 4 }
local p = ituna.producer { bootstrap = broker.bootstrap }
for i = 1, 3 do p:publish("host-topic", "m" .. i, { key = "k" .. i }) end
p:flush(10)
local c = ituna.consumer { bootstrap = broker.bootstrap, group = "host-g", topics = { "host-topic" },
  ["auto.offset.reset"] = "earliest" }
local handled = 0
for msg in c:messages() do -- no limit: only the stop request ends it
  handled = handled + 1
  ituna.tracer():span("handle " .. msg.key, function() end)
  if handled == 3 then io.open(marker, "w"):close() end
end
print("loop ended normally after " .. handled .. " message(s)")
c:close()
p:close()
broker:stop()
