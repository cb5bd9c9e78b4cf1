-- test_app_schema.lua - an application's config sections from Lua: ituna.init{schema=}
-- registers them (checked as strictly as the core's, file:line messages), and
-- tracer:config_value answers set values and the schema's defaults; ituna-lua --schema
-- and $ITUNA_CONFIG_SCHEMA do the same for the host.
local T = require "testlib"
local ituna = require "ituna"

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

local schema = write(T.tmpfile("shop-schema.ini"),
  "[shop]\nrate = float(0..10) 2.5\nmode = enum(fast|slow) fast\nname = string the shop\n")
local cfg = write(T.tmpfile("shop.ini"), "[tracer]\nservice-name = shop\n[shop]\nrate = 4\n")
local bad = write(T.tmpfile("bad.ini"), "[shop]\n\nmode = medium\n")

T.section("init without the schema: the core does not know [shop]")
T.raises(":3: [shop]: unknown section", ituna.init, { config = cfg, exporter = "none" })
T.raises("schema must be a file path (string), got number", ituna.init, { config = cfg, schema = 3 })
T.raises(":3: [shop] mode: expected one of fast, slow, got 'medium'", ituna.init,
  { config = bad, schema = schema, exporter = "none" })
T.raises("unknown type 'number'", ituna.init,
  { schema = write(T.tmpfile("bad-schema.ini"), "[x]\na = number\n"), exporter = "none" })

T.section("init with the schema")
local tracer = ituna.init { config = cfg, schema = schema, exporter = "none" }
T.eq(tracer:service_name(), "shop", "the file loaded")
T.eq(tracer:config_value("shop", "rate"), "4", "a set value")
T.eq(tracer:config_value("shop", "mode"), "fast", "the schema's default")
T.eq(tracer:config_value("shop", "name"), "the shop", "a default with blanks")
T.eq(tracer:config("shop", "mode"), nil, "tracer:config: only set values")
T.eq(tracer:config_value("tracer", "sampler"), "parentbased_always_on", "the core's defaults too")
T.eq(tracer:config_value("exporter", "type"), "none", "exporter = ... names [exporter] type")

T.section("the host: --schema and $ITUNA_CONFIG_SCHEMA")
local host = assert(os.getenv("ITUNA_LUA_HOST"), "ITUNA_LUA_HOST is not set")
local script = write(T.tmpfile("show.lua"),
  'local t = require("ituna").tracer()\nprint("mode=" .. t:config_value("shop", "mode"))\n')
local env = "OTEL_TRACES_EXPORTER=none "
local code, out = T.run(env .. host .. " --schema " .. schema .. " --config " .. cfg .. " " .. script)
T.eq(code, 0, "ituna-lua --schema runs: " .. out)
T.check(out:find("mode=fast", 1, true), "the host's tracer answers the schema's default: " .. out)
code, out = T.run(env .. "ITUNA_CONFIG_SCHEMA=" .. schema .. " " .. host .. " --config " .. cfg .. " " .. script)
T.eq(code, 0, "ituna-lua with $ITUNA_CONFIG_SCHEMA runs: " .. out)
code, out = T.run(env .. host .. " --config " .. cfg .. " " .. script)
T.eq(code, 2, "without the schema the host refuses the file")
T.check(out:find("[shop]: unknown section", 1, true), "naming the section: " .. out)

T.done()
