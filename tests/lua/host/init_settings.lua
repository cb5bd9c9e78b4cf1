-- init_settings.lua KEY VALUE: run by ituna-lua; passes one setting to ituna.init
local ituna = require "ituna"
local key, value = ...
local tracer = ituna.init { service_name = "init-settings", [key] = value }
tracer:span("init-settings-span", {}, function() end)
print("init accepted " .. key .. "; service=" .. tracer:service_name())
