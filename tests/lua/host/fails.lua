-- fails.lua: a script error inside a span (the error is on line 5)
local ituna = require "ituna"
local tracer = ituna.init {}
tracer:span("doomed", function()
  local t = nil; return t.field -- line 5
end)
