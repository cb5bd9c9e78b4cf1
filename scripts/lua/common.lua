-- common.lua - what the five Lua services of the ITuna restaurant share: the
-- config values they read (delays, rates, failure rates, topics), the menu and the
-- order payload, the seed-format log line with trace ids, failure injection, the
-- tracer/producer/consumer set-up on the ituna module, and the loops every
-- ordering and consuming service runs.
--
-- scripts/python/common.py is the same for the Python services: topics, span
-- names, attributes and log lines must stay identical between the two.

local ituna = require "ituna"

local M = {}

-- The seed's ITuna menu, all 8 dishes, so that orders placed by the seed's own ordering
-- services pass our validation and ours pass the seed's. UNAGI DON is not on it and sold
-- out: an order naming it fails inventory validation. Ordering services never order it.
M.MENU = {
    "ITUNA SOUP", "TUNA SALAD", "TUNA MAKI", "TUNA SASHIMI", "TUNA NIGIRI", "SPICY TUNA NIGIRI",
    "ITUNA ROLL", "SPICY ITUNA ROLL",
}
M.SOLD_OUT = { ["UNAGI DON"] = true }
local ON_MENU = {}
for _, d in ipairs(M.MENU) do ON_MENU[d] = true end
M.ON_MENU = ON_MENU

local FIRST_NAMES = { "Aiko", "Ben", "Chiara", "Dmitri", "Emeka", "Fatima", "Goro", "Hana", "Ivan", "Jun",
    "Kemal", "Lena", "Mateo", "Noor", "Oskar", "Priya", "Quinn", "Rei", "Sven", "Tomoko" }
local LAST_NAMES = { "Sato", "Okafor", "Rossi", "Novak", "Kim", "Haddad", "Silva", "Tanaka", "Berg", "Costa" }
local STREETS = { "Harbour Street", "Fish Market Lane", "Pier Road", "Kelp Avenue", "Tide Way", "Wharf Street" }
local ZIP_CODES = { "90901", "90902", "90903", "90910" }

M.CONSUMER_GROUP = "ituna"
M.ASSIGN_TIMEOUT_S = 30 -- how long a consuming service waits for its partitions before going on
local MALFORMED_MT = getmetatable(ituna.malformed("probe")) -- ituna.malformed's error objects
local ZERO_TRACE = string.rep("0", 32)
local ZERO_SPAN = string.rep("0", 16)

-- ---- config ------------------------------------------------------------------------

-- scripts/, the folder above this file's lua/
local function scripts_dir()
    local src = debug.getinfo(1, "S").source
    local dir = src:sub(1, 1) == "@" and src:sub(2):match("^(.*)/[^/]*$") or "."
    return dir .. "/.."
end

-- --config PATH (in arg), else $ITUNA_CONFIG, else scripts/ituna-config.ini next to this file.
function M.config_path()
    if arg then
        for i = 1, #arg do
            if arg[i] == "--config" and arg[i + 1] then return arg[i + 1] end
            local v = arg[i]:match("^%-%-config=(.+)$")
            if v then return v end
        end
    end
    local env = os.getenv("ITUNA_CONFIG")
    if env and env ~= "" then return env end
    return scripts_dir() .. "/ituna-config.ini"
end

-- The restaurant's config schema: $ITUNA_CONFIG_SCHEMA, else scripts/restaurant-schema.ini.
-- (Under the ituna-lua host, which sets the tracer up before this script runs, the host
-- takes it from --schema or the same variable.)
function M.schema_path()
    local env = os.getenv("ITUNA_CONFIG_SCHEMA")
    if env and env ~= "" then return env end
    return scripts_dir() .. "/restaurant-schema.ini"
end

local Config = {}
Config.__index = Config

-- The value set in the file, else the default of restaurant-schema.ini (the core
-- loaded and checked both; common.py reads them alike).
function Config:get(section, key)
    return self.tracer:config_value(section, key)
end

-- One draw of [simulated-delays] key in seconds: "140" or a range "2000-4000" (ms).
function Config:delay_s(key)
    local text = self:get("simulated-delays", key) or "0"
    local lo, hi = text:match("^%s*([%d%.]+)%s*%-%s*([%d%.]+)%s*$")
    if not lo then
        lo = text:match("^%s*([%d%.]+)%s*$") or "0"
        hi = lo
    end
    lo, hi = tonumber(lo), tonumber(hi)
    return (lo + math.random() * (hi - lo)) / 1000.0
end

function Config:rate(service)
    return tonumber(self:get("rates", service) or "0") or 0
end

function Config:failure_rate(key)
    return tonumber(self:get("failure-rates", key) or "0") or 0
end

function Config:topic(which)
    if which == "orders" then return self:get("initial-order", "queue-topic") end
    if which == "kitchen" then return self:get("kitchen-queue", "queue-topic") end
    if which == "rejected" then return self:get("topics", "rejected") end
    if which == "ready" then return self:get("topics", "ready") end
    error("unknown topic " .. tostring(which))
end

-- Failure injection: true with probability rate.
function M.fails(rate)
    return rate > 0 and math.random() < rate
end

-- ---- logging -----------------------------------------------------------------------

-- The seed's line format plus the ids of the span the line belongs to:
-- `YYYY-mm-dd HH:MM:SS - <service> - INFO - <message> trace_id=<32hex> span_id=<16hex>`.
-- Lines outside any span carry all-zero ids (W3C's "no trace").
local Log = {}
Log.__index = Log

function Log:emit(level, message, span)
    local tid, sid = ZERO_TRACE, ZERO_SPAN
    if span then
        local ctx = span:context()
        tid, sid = ctx.trace_id, ctx.span_id
    end
    io.stdout:write(string.format("%s - %s - %s - %s trace_id=%s span_id=%s\n",
        os.date("%Y-%m-%d %H:%M:%S"), self.service, level, message, tid, sid))
    io.stdout:flush()
end

function Log:info(message, span) self:emit("INFO", message, span) end
function Log:error(message, span) self:emit("ERROR", message, span) end

-- ---- orders ------------------------------------------------------------------------

local function uuid4()
    local b = {}
    for i = 1, 16 do b[i] = math.random(0, 255) end
    b[7] = (b[7] & 0x0f) | 0x40
    b[9] = (b[9] & 0x3f) | 0x80
    return string.format("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
        table.unpack(b))
end
M.uuid4 = uuid4

local function pick(list) return list[math.random(1, #list)] end

-- The seed's payload plus source and customer_name. source: website, on-site, direct.
function M.make_order(source)
    local pool = {}
    for i, d in ipairs(M.MENU) do pool[i] = d end
    local details = {}
    for _ = 1, math.random(2, 5) do
        local d = table.remove(pool, math.random(1, #pool))
        details[d] = math.random(1, 3)
    end
    local order = { order_id = uuid4(), customer_id = uuid4(), order_details = details }
    if source == "website" then
        order.address = string.format("%d %s, %s ITuna Bay", math.random(1, 250), pick(STREETS), pick(ZIP_CODES))
    elseif source == "on-site" then
        order.table = math.random(1, 24)
    end
    order.source = source
    order.customer_name = pick(FIRST_NAMES) .. " " .. pick(LAST_NAMES)
    return order
end

-- Dish names of an order, sorted (Lua tables have no key order; Python sorts too).
function M.dishes(order)
    local out = {}
    for d in pairs(order.order_details or {}) do out[#out + 1] = d end
    table.sort(out)
    return out
end

function M.first_dish(order)
    return M.dishes(order)[1] or "food"
end

function M.count_dishes(order)
    return #M.dishes(order)
end

-- order.id and order.source: on every span of an order.
function M.order_attrs(order)
    return { ["order.id"] = tostring(order.order_id or ""), ["order.source"] = tostring(order.source or "unknown") }
end

function M.copy(t)
    local c = {}
    for k, v in pairs(t) do c[k] = v end
    return c
end

function M.mark_error(span, description)
    span:set_status("error", description)
end

-- ---- process set-up ------------------------------------------------------------------

-- Seed from the OS: processes started in the same instant must not draw the same
-- order ids (math.randomseed() alone seeds from the clock).
local function seed_random()
    local f = io.open("/dev/urandom", "rb")
    local bytes = f and f:read(16)
    if f then f:close() end
    if bytes and #bytes == 16 then
        math.randomseed(string.unpack("<i8<i8", bytes))
    else
        math.randomseed(ituna.now(), os.time())
    end
end

function M.service(name)
    seed_random()
    local path = M.config_path()
    -- under the ituna-lua host the tracer exists already (set up from its --config and
    -- --schema / $ITUNA_CONFIG_SCHEMA); with plain lua5.4 this script sets it up
    local tracer = ituna.tracer() or ituna.init { service_name = os.getenv("OTEL_SERVICE_NAME") or name,
        config = path, schema = M.schema_path() }
    local svc = {
        name = name,
        tracer = tracer,
        config = setmetatable({ tracer = tracer }, Config),
        log = setmetatable({ service = name }, Log),
    }
    function svc.ready(what) svc.log:info(string.format("READY %s (%s)", name, what)) end
    return svc
end

-- Wait up to 10 s for the delivery reports. A timeout (broker unreachable) is not a
-- failure: the messages stay queued in the producer, which delivers them when the
-- broker is back (message.timeout.ms: 10 min); failing the order would publish it
-- twice. A delivery that failed for good still raises.
function M.flush(log, producer, span)
    local ok, err = pcall(producer.flush, producer, 10)
    if ok then return end
    if tostring(err):find("timed out", 1, true) then
        log:error("DELIVERY DELAYED (kept, sent when the broker is back): " .. tostring(err), span)
    else
        error(err, 0)
    end
end

-- Before exiting, wait for the orders still queued in the producer (a broker outage):
-- closing would purge them. Up to message.timeout.ms (10 min), or until asked to stop.
function M.drain(svc, producer, limit_s)
    local deadline = ituna.now() + (limit_s or 600) * 1e9
    while ituna.running() and ituna.now() < deadline do
        local ok, err = pcall(producer.flush, producer, 10)
        if ok then return end
        if not tostring(err):find("timed out", 1, true) then error(err, 0) end
        svc.log:error("DELIVERY DELAYED at exit, waiting for the broker: " .. tostring(err))
    end
end

function M.producer()
    return ituna.producer {}
end

function M.consumer(svc, topic)
    -- earliest: a group that never committed must not skip orders placed while it joined.
    return ituna.consumer {
        topics = { topic },
        group = M.CONSUMER_GROUP .. "-" .. svc.name,
        ["auto.offset.reset"] = "earliest",
        -- static membership (the launcher sets it): a restarted instance gets its partitions back
        -- with the topic: a member of an earlier run on other topics must not hand this one
        -- its old assignment (a known static member gets it back unchanged)
        ["group.instance.id"] = os.getenv("ITUNA_GROUP_INSTANCE_ID") and (os.getenv("ITUNA_GROUP_INSTANCE_ID") .. "@" .. topic),
    }
end

-- Poll until the group gave this member partitions, then say so with an ASSIGNED
-- line (the launcher waits for it before orders start). A message that arrives
-- meanwhile is kept by the module for the loop; a stop request ends the wait early.
function M.wait_assigned(svc, consumer, timeout)
    timeout = timeout or M.ASSIGN_TIMEOUT_S
    if not ituna.running() then return end
    if consumer:wait_assigned(timeout) then
        svc.log:info(string.format("ASSIGNED %s partitions=%d", svc.name, consumer:assignment_count()))
    elseif ituna.running() then
        svc.log:error(string.format("no partitions assigned to %s within %g s; consuming anyway", svc.name, timeout))
    end
end

-- ITUNA_ORDERS_LIMIT: orders this ordering service places before it exits (nil: no limit).
function M.orders_limit()
    local text = os.getenv("ITUNA_ORDERS_LIMIT")
    if not text or text == "" then return nil end
    local n = math.tointeger(tonumber(text))
    if not n or n < 0 then error("ITUNA_ORDERS_LIMIT must be a whole number >= 0, got " .. text) end
    return n
end

-- Close consumers (final commit) and producers, flush the spans; exit 1 when any
-- of it failed (3 when only spans were lost), so the launcher knows the stop was not clean.
function M.shutdown(svc, ...)
    local clean = true
    for _, c in ipairs({ ... }) do
        local ok, err = pcall(function() c:close() end)
        if not ok then
            clean = false
            svc.log:error("close failed: " .. tostring(err))
        end
    end
    local spans_ok, why = ituna.shutdown(10)
    if not spans_ok then svc.log:error("SPANS LOST: " .. tostring(why)) end
    svc.log:info("Stopped " .. svc.name)
    if not clean then os.exit(1) end
    -- 3: stopped well but spans were lost; the launcher reports it apart from a failure
    if not spans_ok then os.exit(3) end
end

-- The loop every ordering service runs: on a timer (rate from [rates]), an order
-- inside span_name, the simulated work delay, a publish to the topic.
function M.run_ordering(opts)
    local svc = M.service(opts.service)
    local topic = svc.config:topic(opts.topic)
    local rate = svc.config:rate(opts.service)
    local limit = M.orders_limit()
    local producer = M.producer()
    svc.ready("publishing to " .. topic)
    local placed = 0
    while ituna.running() and (limit == nil or placed < limit) and rate > 0 do
        local started = ituna.now()
        local order = M.make_order(opts.source)
        svc.tracer:span(opts.span, M.order_attrs(order), function(span)
            span:set_attribute("order.items", M.count_dishes(order))
            svc.log:info(opts.placing(order.order_id), span)
            -- The seed's simulated work happens inside the order span.
            M.work(svc.config:delay_s(opts.delay))
            producer:publish(topic, order, { key = order.order_id, attributes = M.order_attrs(order) })
            M.flush(svc.log, producer, span)
            svc.log:info(opts.placed, span)
        end)
        placed = placed + 1
        if limit ~= nil and placed >= limit then break end
        local left = 1.0 / rate - (ituna.now() - started) / 1e9
        if left > 0 then ituna.sleep(left) end
    end
    svc.log:info(string.format("DONE %s placed=%d", opts.service, placed))
    M.drain(svc, producer)
    M.shutdown(svc, producer)
end

-- ---- consuming services ----------------------------------------------------------------

-- The order in a message, or raise ituna.malformed (the message then goes to the DLQ).
function M.parse_order(msg)
    local order = msg:json() -- raises ituna.malformed when the payload is not JSON
    if type(order) ~= "table" or type(order.order_id) ~= "string" or order.order_id == "" then
        error(ituna.malformed("payload is not an order: no order_id"), 0)
    end
    if type(order.order_details) ~= "table" then
        error(ituna.malformed("payload is not an order: no order_details"), 0)
    end
    order.carrier = nil -- the seed's context field: never forwarded as stale context
    if order.source == nil then order.source = "unknown" end
    return order
end

-- The loop every consuming service runs: one CONSUMER span per message (current
-- while the body runs), commit after it returns, stop on SIGTERM/SIGINT.
function M.run_consumer(opts)
    local svc = M.service(opts.service)
    local topic = svc.config:topic(opts.topic)
    local producer = M.producer()
    local consumer = M.consumer(svc, topic)
    svc.ready(string.format("consuming %s as group %s-%s", topic, M.CONSUMER_GROUP, opts.service))
    M.wait_assigned(svc, consumer)
    -- consumer:each: a handler error leaves the message uncommitted (redelivered) and
    -- the loop goes on; ituna.malformed sends it to the DLQ; a stop request ends it.
    local handled = 0 -- as common.py counts: handled or dead-lettered, not failed
    consumer:each(function(msg)
        -- Closed when the body ends, with the error if it failed; the error then goes on
        -- to the module unchanged (traceback included).
        local _ <close> = setmetatable({}, { __close = function(_, err)
            if err == nil or getmetatable(err) == MALFORMED_MT then
                handled = handled + 1
            else
                -- the same line as common.py's, with the ids of the message's CONSUMER span
                svc.log:error(string.format("Failed to handle a message from %s [%d] @%d (it will be redelivered): %s",
                    msg.topic, msg.partition, msg.offset, tostring(err)), msg:span())
            end
        end })
        local order = M.parse_order(msg)
        local cspan = msg:span()
        for k, v in pairs(M.order_attrs(order)) do cspan:set_attribute(k, v) end
        opts.handle(svc, producer, order)
    end)
    svc.log:info(string.format("DONE %s handled=%d", opts.service, handled))
    M.shutdown(svc, consumer, producer)
end

-- Sleep through a simulated delay even if a stop arrives (an order in hand is finished).
function M.work(seconds)
    local deadline = ituna.now() + math.floor(seconds * 1e9)
    while ituna.now() < deadline do
        if not ituna.sleep(math.max(0, (deadline - ituna.now()) / 1e9)) then
            os.execute(string.format("sleep %.3f", math.max(0, (deadline - ituna.now()) / 1e9)))
            return
        end
    end
end

return M
