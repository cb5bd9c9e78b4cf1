-- timer.lua: a timer-driven service; stops on SIGINT/SIGTERM
local ituna = require "ituna"
local marker = assert(arg[1], "marker path")
local ticks = 0
while ituna.running() do
  ituna.tracer():span("tick", function() ticks = ticks + 1 end)
  if ticks == 1 then io.open(marker, "w"):close() end
  ituna.sleep(30) -- cut short by the stop request
end
print("timer stopped after " .. ticks .. " tick(s)")
