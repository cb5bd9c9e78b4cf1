-- consume_inflight.lua: a consumer service on the broker given as arg[2] (topic
-- arg[3], group arg[4]); the body of its 3rd message writes the marker (arg[1])
-- and then works for 2 s, so SIGINT/SIGTERM arrives while it runs. ituna-lua's
-- contract: the body in hand runs to its end, the loop then commits it and ends
-- normally (no new message is taken), and the script goes on to close.
local ituna = require "ituna"
local marker, bootstrap, topic, group = arg[1], arg[2], arg[3], arg[4]
assert(marker and bootstrap and topic and group, "usage: consume_inflight.lua marker bootstrap topic group")
local c = ituna.consumer { bootstrap = bootstrap, group = group, topics = { topic },
  ["auto.offset.reset"] = "earliest" }
local handled = {}
for msg in c:messages() do -- no limit: only the stop request ends it
  handled[#handled + 1] = msg.value
  ituna.tracer():span("handle " .. msg.value, function()
    if #handled == 3 then
      io.open(marker, "w"):close()
      -- uninterruptible work: ituna.sleep returns early once stopping, so wait out the clock
      local deadline = ituna.now() + 2e9
      while ituna.now() < deadline do ituna.sleep(0.05) end
      print(("body of %s finished, running=%s"):format(msg.value, tostring(ituna.running())))
    end
  end)
end
print("loop ended normally after " .. #handled .. " message(s): " .. table.concat(handled, ","))
c:close()
