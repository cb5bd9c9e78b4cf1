-- exits.lua: os.exit inside an open span still flushes it
local ituna = require "ituna"
local span = ituna.tracer():start_span("before-exit")
os.exit(3)
