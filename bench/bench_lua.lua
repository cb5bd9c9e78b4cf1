-- bench_lua.lua - Lua binding benchmark (run with lua5.4): a span start+end with
-- 2 attributes, and a publish on the embedded broker, beside the same work
-- through the C API (bench_lua_peer, run as a separate process) and the Python
-- binding (if importable). Same settings everywhere: exporter "none", queue
-- 65536, best of 5 runs. Target: a Lua span <= 400 ns.
--   LUA_CPATH='build-lua/bindings/lua/lib/?.so;;' lua5.4 bench/bench_lua.lua [N]
-- Env: ITUNA_BENCH_PEER (path of bench_lua_peer; default: found in build*/bench).
local ituna = require "ituna"

local N = tonumber(arg and arg[1]) or 200000
local RUNS = 5
local here = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]+$")) or "."
local root = here .. "/.."

local function best_ns(n, fn)
  local best = math.huge
  for _ = 1, RUNS do
    collectgarbage()
    local t0 = ituna.now()
    fn(n)
    local ns = (ituna.now() - t0) / n
    if ns < best then best = ns end
  end
  return best
end

local tracer = ituna.init {
  service_name = "bench-lua",
  ["exporter.type"] = "none",
  ["exporter.max-queue-size"] = 65536,
  ["exporter.max-export-batch-size"] = 4096,
}

local results = {}
local function body() end
local attrs = { k1 = 1, k2 = "value" }
local function span_loops(tag)
  results["lua_start_span" .. tag] = best_ns(N, function(n)
    for i = 1, n do
      local s <close> = tracer:start_span("op", { k1 = i, k2 = "value" })
    end
    tracer:flush(10)
  end)
  results["lua_span_fn" .. tag] = best_ns(N, function(n)
    for i = 1, n do
      tracer:span("op", { k1 = i, k2 = "value" }, body)
    end
    tracer:flush(10)
  end)
  results["lua_start_span_reused" .. tag] = best_ns(N, function(n)
    for _ = 1, n do
      local s <close> = tracer:start_span("op", attrs)
    end
    tracer:flush(10)
  end)
end
span_loops("_top")
do -- the same inside an open parent span, as in a consumer body
  local parent <close> = tracer:start_span("parent")
  span_loops("_nested")
end

-- publish on the embedded broker
local broker = ituna.start_embedded_broker { partitions = 4 }
local producer = ituna.producer { bootstrap = broker.bootstrap, ["linger.ms"] = 5 }
local payload = ("x"):rep(100)
producer:publish("bench-lua", payload)
producer:flush(10)
local nmsg = math.max(1, N // 10)
local best_pub, best_flush = math.huge, math.huge
for _ = 1, RUNS do
  collectgarbage()
  local t0 = ituna.now()
  for i = 1, nmsg do producer:publish("bench-lua", payload, { key = "k" .. i }) end
  local t1 = ituna.now()
  producer:flush(60)
  local t2 = ituna.now()
  best_pub = math.min(best_pub, (t1 - t0) / nmsg)
  best_flush = math.min(best_flush, (t2 - t0) / nmsg)
end
results.lua_publish_ns = best_pub
results.lua_publish_flush_ns = best_flush
local tpub = { order_id = "c18652e2-982a-4b40-be21-ee1cd619a920", order_details = { maki = 2, sashimi = 1 }, table = 7 }
results.lua_publish_table_ns = best_ns(nmsg, function(n)
  for i = 1, n do producer:publish("bench-lua", tpub, { key = "k" .. i }) end
  producer:flush(60)
end)
producer:close()
broker:stop()
ituna.shutdown(5)

-- the C peer
local function find_peer()
  local env = os.getenv("ITUNA_BENCH_PEER")
  if env then return env end
  for _, d in ipairs { "build", "build-lua", "build-lead", "build-bench" } do
    local p = ("%s/%s/bench/bench_lua_peer"):format(root, d)
    local f = io.open(p)
    if f then f:close(); return p end
  end
end
local c = {}
local peer = find_peer()
if peer then
  local h = io.popen(("'%s' %d 2>/dev/null"):format(peer, N))
  for line in h:lines() do
    local k, v = line:match("^(%S+)%s+(%S+)$")
    if k then c[k] = tonumber(v) end
  end
  h:close()
else
  print("C peer: skipped (bench_lua_peer not built; set ITUNA_BENCH_PEER)")
end

-- the Python binding
local py = {}
local pycode = ([[
import sys, time, gc, glob, os
tree = %q  # the in-tree build when there is one, else the installed package
if glob.glob(os.path.join(tree, "ituna", "_core.*.so")):
    sys.path.insert(0, tree)
import ituna
t = ituna.init(service_name="bench-py", env=False, settings={"exporter.type": "none",
    "exporter.max-queue-size": "65536", "exporter.max-export-batch-size": "4096"})
n = %d
best = 1e18
for _ in range(5):
    gc.collect()
    t0 = time.perf_counter_ns()
    for i in range(n):
        with t.span("op", attributes={"k1": i, "k2": "value"}):
            pass
    best = min(best, (time.perf_counter_ns() - t0) / n)
print("py_span_ns %%.1f" %% best)
]]):format(root .. "/bindings/python", N)
local pyfile = os.tmpname()
local pf = io.open(pyfile, "w")
pf:write(pycode)
pf:close()
local h = io.popen(("python3 '%s' 2>&1"):format(pyfile))
local pyout = h:read("a")
h:close()
os.remove(pyfile)
for k, v in pyout:gmatch("(py_%S+)%s+(%S+)") do py[k] = tonumber(v) end
if not py.py_span_ns then
  print("Python binding: skipped (" .. (pyout:match("([^\n]*Error[^\n]*)") or pyout:sub(1, 200)) .. ")")
end

local function fmt(v) return v and ("%8.1f"):format(v) or "       -" end
local function ratio(a, b) return (a and b) and ("%5.2fx"):format(a / b) or "    -" end
print(("Lua binding benchmark: N=%d spans, %d messages, best of %d"):format(N, nmsg, RUNS))
print(("%-48s %8s %8s %8s  %s"):format("operation (ns/op)", "Lua", "C", "Python", "Lua/C"))
local function row(label, lua, cv, pyv)
  print(("%-48s %s %s %s  %s"):format(label, fmt(lua), fmt(cv), fmt(pyv), ratio(lua, cv)))
end
for _, tag in ipairs { "_top", "_nested" } do
  local where = tag == "_top" and "top level" or "nested"
  local cref = tag == "_top" and c.c_span_current_ns or c.c_span_nested_ns
  row("span " .. where .. ": start_span <close>, 2 new attrs", results["lua_start_span" .. tag], cref,
    tag == "_top" and py.py_span_ns or nil)
  row("span " .. where .. ": tracer:span(fn), 2 new attrs", results["lua_span_fn" .. tag], cref)
  row("span " .. where .. ": start_span, attrs table reused", results["lua_start_span_reused" .. tag], cref)
end
row("C span without making it current", nil, c.c_span_ns)
print(("%-48s %s %s %s  %s"):format("publish 100 B string (enqueue)", fmt(results.lua_publish_ns),
  fmt(c.c_publish_ns), fmt(nil), ratio(results.lua_publish_ns, c.c_publish_ns)))
print(("%-48s %s %s %s  %s"):format("publish 100 B + flush, per message", fmt(results.lua_publish_flush_ns),
  fmt(c.c_publish_flush_ns), fmt(nil), ratio(results.lua_publish_flush_ns, c.c_publish_flush_ns)))
print(("%-48s %s %s %s  %s"):format("publish table as JSON + flush, per message", fmt(results.lua_publish_table_ns),
  fmt(nil), fmt(nil), ""))
local target = 400
for _, tag in ipairs { "_top", "_nested" } do
  local v = results["lua_start_span" .. tag]
  print(("target: Lua span (%s) <= %d ns: %s (%.1f ns)"):format(tag:sub(2), target, v <= target and "met" or "NOT met", v))
end
