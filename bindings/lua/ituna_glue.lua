-- ituna_glue.lua - the cold part of the `ituna` module, in Lua: the option tables of
-- ituna.init, ituna.producer, ituna.consumer and the consumer loops checked and turned
-- into the plain values the C functions take, with the same error texts, and how
-- tracers, spans and errors print. luaopen_ituna runs this chunk (compiled into the
-- module by embed_lua.cmake) with the module table M and the table C of C functions
-- the module does not publish (kept in the registry, so C can call what this adds to
-- it). Nothing here runs per message.
local M, C = ...
local type, pairs, ipairs, rawget, rawlen, tostring, tonumber, select, error, setmetatable =
  type, pairs, ipairs, rawget, rawlen, tostring, tonumber, select, error, setmetatable
local getmetatable = debug and debug.getmetatable or getmetatable

-- A value's type as luaL_typeerror names it: __name of its metatable, "no value" when absent.
local function typename(n, v)
  if n == 0 then return "no value" end
  local mt = getmetatable(v)
  local name = type(mt) == "table" and rawget(mt, "__name")
  return type(name) == "string" and name or type(v)
end

-- luaL_argerror's error for argument arg of the glue function fn, up helper calls
-- below it: it names fn as its caller called it (ituna.init{} -> 'init'), else in full;
-- called as a method (consumer:each), self is not counted.
local function argerror(fn, arg, msg, up)
  local info = debug and debug.getinfo(2 + up, "n")
  if info and info.namewhat == "method" then arg = arg - 1 end
  error(("bad argument #%d to '%s' (%s)"):format(arg, info and info.name or fn, msg), 3 + up)
end

-- luaL_checktype's error for argument 1 of fn (n: how many arguments were given).
local function check_table(fn, n, v)
  if type(v) ~= "table" then argerror(fn, 1, "table expected, got " .. typename(n, v), 1) end
end

-- luaL_checkinteger of v, argument arg of fn.
local function check_integer(fn, arg, v)
  local n = (type(v) == "number" or type(v) == "string") and tonumber(v)
  local i = n and math.tointeger(n)
  if i then return i end
  argerror(fn, arg, n and "number has no integer representation" or "number expected, got " .. typename(1, v), 1)
end

-- What a C constructor returned: the object, or nil and the core's message raised
-- at the line that called ituna.init/producer/consumer (made is tail-called, so
-- that line is level 2).
local function made(object, err)
  if object == nil then error(err, 2) end
  return object
end

-- Optional string option key of opts (nil when absent).
local function opt_string(opts, key, fn)
  local v = opts[key]
  if v ~= nil and type(v) ~= "string" then
    error(("%s: option '%s' must be a string, got %s"):format(fn, key, type(v)), 3)
  end
  return v
end

-- The options that are not reserved, as a list key, value, key, value ... of strings
-- (booleans and numbers as text): librdkafka properties or configuration settings.
local function string_pairs(opts, reserved, fn)
  local list = {}
  for k, v in pairs(opts) do
    if type(k) ~= "string" then error(("%s: option keys must be strings, got %s"):format(fn, type(k)), 3) end
    if not reserved[k] then
      local vt = type(v)
      if vt ~= "boolean" and vt ~= "string" and vt ~= "number" then
        error(("%s: option '%s' is a %s; expected string, number or boolean"):format(fn, k, vt), 3)
      end
      list[#list + 1] = k
      list[#list + 1] = tostring(v)
    end
  end
  return list
end

-- The module's current tracer, or raise naming fn.
local function current_tracer(fn)
  local t = C.current()
  if not t then error(fn .. ": no tracer; call ituna.init{...} first", 3) end
  return t
end

-- ituna.tracer(): the current tracer or nil.
function M.tracer()
  return (C.current())
end

local init_reserved = { config = true, schema = true }

-- ituna.init{service_name=..., config=path, schema=path, [key]=value...}: the
-- application schema (else $ITUNA_CONFIG_SCHEMA), the file, then the environment,
-- then the table's keys, so env wins over the file and the table over both (the
-- core's ituna_tracer_create_host). With a tracer already set up by an earlier init,
-- returns that one and ignores the table. With one set up by the host (ituna-lua),
-- the tracer exists before the script runs, so a setting in the table cannot take
-- effect: rather than drop it silently, raise the core's error naming it and where
-- it belongs (C.host_setting_error); service_name, and config or schema naming the
-- host's own files, pass, so one script runs under both lua5.4 and ituna-lua.
function M.init(...)
  local opts = ...
  check_table("ituna.init", select("#", ...), opts)
  local t, owned = C.current()
  if t then
    local service = t:service_name()
    if not owned then
      for k, v in pairs(opts) do
        -- a key that is not a string: the table's own checks do not run here
        local err = type(k) == "string" and C.host_setting_error(service, k, v)
        if err then error(("ituna.init: %s, or run the script with lua5.4"):format(err), 2) end
      end
    end
    -- say so when the caller asked for another service name, since the table is ignored
    local name = opts.service_name
    if type(name) == "string" and name ~= service then
      M.log("warn", ("ituna.init: the tracer is already set up as '%s'; service_name '%s' ignored"):format(
        service, name))
    end
    return t
  end
  for _, key in ipairs({ "config", "schema" }) do
    local v = opts[key]
    if v ~= nil and type(v) ~= "string" then
      error(("ituna.init: %s must be a file path (string), got %s"):format(key, type(v)), 2)
    end
  end
  return made(C.init(opts.schema, opts.config, string_pairs(opts, init_reserved, "ituna.init")))
end

local producer_reserved = { bootstrap = true, on_delivery = true, payload_carrier = true }

-- ituna.producer{bootstrap=..., on_delivery=fn, payload_carrier=bool, [librdkafka
-- property]=value...} -> producer.
function M.producer(opts)
  local tracer = current_tracer("ituna.producer")
  if opts == nil then opts = {} end
  check_table("ituna.producer", 1, opts)
  local bootstrap = opt_string(opts, "bootstrap", "ituna.producer")
  local on_delivery = opts.on_delivery
  if on_delivery ~= nil and type(on_delivery) ~= "function" then
    error(("ituna.producer: on_delivery must be a function, got %s"):format(type(on_delivery)), 2)
  end
  local properties = string_pairs(opts, producer_reserved, "ituna.producer")
  return made(C.producer(tracer, bootstrap, opts.payload_carrier, on_delivery, properties))
end

local consumer_reserved = { bootstrap = true, group = true, topics = true, context = true, dlq_suffix = true }

-- ituna.consumer{topics={...}, group=..., bootstrap=..., context="parent"|"link",
-- dlq_suffix=..., [librdkafka property]=value...} -> consumer.
function M.consumer(...)
  local opts = ...
  local tracer = current_tracer("ituna.consumer")
  check_table("ituna.consumer", select("#", ...), opts)
  local fn = "ituna.consumer"
  local bootstrap, group = opt_string(opts, "bootstrap", fn), opt_string(opts, "group", fn)
  local dlq_suffix = opt_string(opts, "dlq_suffix", fn)
  if not group then error("ituna.consumer: option 'group' (the consumer group id) is required", 2) end
  local context = opt_string(opts, "context", fn)
  if context and not C.context_mode(context) then
    error(('ituna.consumer: option \'context\' must be "parent" or "link", got "%s"'):format(context), 2)
  end
  local topics = opts.topics
  if type(topics) == "string" then topics = { topics } end -- one topic
  if type(topics) ~= "table" or rawlen(topics) == 0 then
    error("ituna.consumer: option 'topics' must be a non-empty list of topic names", 2)
  end
  local names = {}
  for i = 1, rawlen(topics) do
    local name = rawget(topics, i)
    if type(name) ~= "string" then
      error(("ituna.consumer: topics[%d] must be a string, got %s"):format(i, type(name)), 2)
    end
    names[i] = name
  end
  local properties = string_pairs(opts, consumer_reserved, fn)
  return made(C.consumer(tracer, bootstrap, group, dlq_suffix, context, names, properties))
end

-- C.loop_options(opts, arg) -> max, idle: the options {max=n, idle=seconds} of
-- consumer:messages and consumer:each (argument arg of theirs, C functions which call
-- this) as they take them: max (0: no limit) and idle in milliseconds (-1: never).
-- Errors are raised at the line that called the method.
function C.loop_options(opts, arg)
  if opts == nil then return 0, -1 end
  if type(opts) ~= "table" then argerror("?", arg, "table expected, got " .. typename(1, opts), 1) end
  local max, idle = opts.max, opts.idle
  if max == nil then
    max = 0
  else
    local v = (type(max) == "number" or type(max) == "string") and tonumber(max)
    max = v and math.tointeger(v)
    if not max or max < 0 then error("bad option 'max' (a non-negative integer expected)", 3) end
  end
  if idle == nil then return max, -1 end
  local s = (type(idle) == "number" or type(idle) == "string") and tonumber(idle)
  if not s or s < 0 or s > 86400 then error("bad option 'idle' (seconds from 0 to 86400 expected)", 3) end
  return max, math.floor(s * 1000 + 0.5)
end

-- ituna.start_embedded_broker{brokers=1, partitions=4} -> broker with .bootstrap and
-- :stop(). librdkafka's built-in test cluster, in this process. (A count's type
-- error says "bad argument #-1", as the C version's luaL_checkinteger(L, -1) did.)
function M.start_embedded_broker(opts)
  local brokers, partitions = 1, 4
  if opts ~= nil then
    check_table("ituna.start_embedded_broker", 1, opts)
    if opts.brokers ~= nil then brokers = check_integer("ituna.start_embedded_broker", -1, opts.brokers) end
    if opts.partitions ~= nil then
      partitions = check_integer("ituna.start_embedded_broker", -1, opts.partitions)
    end
  end
  if brokers < 1 or brokers > 16 then argerror("ituna.start_embedded_broker", 1, "brokers must be 1..16", 0) end
  if partitions < 1 or partitions > 1024 then
    argerror("ituna.start_embedded_broker", 1, "partitions must be 1..1024", 0)
  end
  return made(C.start_embedded_broker(brokers, partitions))
end

-- A tracer prints as its service name, a span as its id (and whether it ended).
function C.tracer_mt.__tostring(t)
  local ok, name = pcall(t.service_name, t)
  return ("ituna.Tracer(%s)"):format(ok and name or "destroyed")
end

function C.span_mt.__tostring(s)
  return ("ituna.Span(%s%s)"):format(s:context().span_id, s:is_ended() and ", ended" or "")
end

-- A delivery error (raised by producer:flush/close) prints as its message.
function C.delivery_error.__tostring(e)
  return e.message
end

local malformed_mt = C.malformed

function malformed_mt.__tostring(m)
  local reason = m.reason
  return "malformed: " .. (reason == nil and "?" or reason)
end

-- ituna.malformed(reason) -> an error object; raised from a consumer body it sends
-- the message to the DLQ.
function M.malformed(...)
  local reason = ...
  if type(reason) == "number" then reason = tostring(reason) end -- as luaL_checkstring converts it
  if type(reason) ~= "string" then
    argerror("ituna.malformed", 1, "string expected, got " .. typename(select("#", ...), reason), 0)
  end
  return setmetatable({ reason = reason }, malformed_mt)
end
