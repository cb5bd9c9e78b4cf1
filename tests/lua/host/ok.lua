-- ok.lua: run by ituna-lua; prints what the host set up
local ituna = require "ituna"
local tracer = ituna.init { service_name = "ignored-under-the-host" }
assert(tracer == ituna.tracer(), "init returns the host's tracer")
local args = table.concat({ ... }, ",")
tracer:span("host-ok-span", { argc = select("#", ...) }, function() end)
print(("service=%s args=%s arg0=%s arg1=%s"):format(tracer:service_name(), args, arg[0]:match("[^/]+$"), tostring(arg[1])))
