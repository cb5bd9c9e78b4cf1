-- One Kafka hop with ituna's Lua API, run by `ituna-lua` (tracer from OTEL_* as the
-- harness sets them; OTEL_SDK_DISABLED=true for the untraced case): consume an order
-- (CONSUMER span), two child spans, publish it on (PRODUCER span). Prints one RESULT line.
local ituna = require "ituna"
local env = os.getenv
local BOOTSTRAP, IN, OUT = env("HOP_BOOTSTRAP"), env("HOP_IN"), env("HOP_OUT")
local N, WARM = math.tointeger(tonumber(env("HOP_N"))), math.tointeger(tonumber(env("HOP_WARM")))
local tracer = ituna.init {}
local consumer = ituna.consumer { topics = { IN }, group = env("HOP_GROUP"), bootstrap = BOOTSTRAP,
                                  ["auto.offset.reset"] = "earliest" }
local producer = ituna.producer { bootstrap = BOOTSTRAP }
local now, clock = ituna.now, os.clock
local lat = {}

local function hop(count, timed)
  for i = 1, count do
    local msg = consumer:poll(10)
    if not msg then error(("hop_ituna.lua: no message within 10 s after %d"):format(i - 1)) end
    local t0 = now()
    local order = msg:json()
    local ok
    do
      local s <close> = tracer:start_span("address_validation")
      ok = order.address ~= nil or order.table ~= nil
    end
    do
      local s <close> = tracer:start_span("name_validation")
      ok = ok and order.customer_name ~= nil and order.customer_name ~= ""
    end
    order.validated = ok
    producer:publish(OUT, order, { key = msg.key })
    msg:done("ok")
    if timed then lat[i] = now() - t0 end
  end
end

local function status()
  local rss, hwm = 0, 0
  for line in io.lines("/proc/self/status") do
    local k, v = line:match("^(Vm%u%u%u?):%s+(%d+)")
    if k == "VmRSS" then rss = tonumber(v) / 1024 elseif k == "VmHWM" then hwm = tonumber(v) / 1024 end
  end
  return rss, hwm
end

hop(WARM, false)
producer:flush(30)
tracer:flush(30)
local cpu0, wall0 = clock(), now()
hop(N, true)
producer:flush(30)
tracer:flush(30)
local cpu, wall = clock() - cpu0, (now() - wall0) / 1e9
table.sort(lat)
local function pct(p) return #lat > 0 and lat[math.min(#lat, math.floor(p * #lat) + 1)] / 1000 or 0 end
local rss, hwm = status()
local st = tracer:stats()
print(("RESULT {\"n\": %d, \"cpu_s\": %.6f, \"wall_s\": %.6f, \"lat_p50_us\": %.3f, \"lat_p99_us\": %.3f, "
       .. "\"rss_mb\": %.1f, \"hwm_mb\": %.1f, \"spans_dropped\": %d, \"spans_export_failed\": %d}")
      :format(#lat, cpu, wall, pct(0.5), pct(0.99), rss, hwm, st.spans_dropped, st.spans_export_failed))
io.stdout:flush()
consumer:close()
producer:close()
