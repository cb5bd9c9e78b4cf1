-- host_checks.lua - ituna-lua as a program: arguments and `arg`, the tracer set
-- up before the script (service name from --service, env, INI or the script's
-- name; ituna.init returns it), exit codes and messages on script errors and
-- os.exit, spans flushed on every way out, and SIGINT/SIGTERM stopping a timer
-- loop and a consumer loop gracefully.
local T = require "testlib"

local host = assert(os.getenv("ITUNA_LUA_HOST"), "ITUNA_LUA_HOST (path of ituna-lua) is not set")
local dir = debug.getinfo(1, "S").source:match("^@(.*)/[^/]+$") .. "/host"

local function sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- run ituna-lua with env (table) and args; returns code, output, spans
local function run(env, args)
  local traces = T.tmpfile("host.jsonl")
  local parts = { "env", "-u", "OTEL_SERVICE_NAME", "ITUNA_TRACES_FILE=" .. sh_quote(traces), "OTEL_BSP_SCHEDULE_DELAY=50" }
  for k, v in pairs(env or {}) do parts[#parts + 1] = k .. "=" .. sh_quote(v) end
  parts[#parts + 1] = "timeout 60 " .. sh_quote(host)
  for _, a in ipairs(args) do parts[#parts + 1] = sh_quote(a) end
  local code, out = T.run(table.concat(parts, " "))
  return code, out, T.read_spans(traces)
end

T.section("a script runs with its arguments and the host's tracer")
local code, out, spans = run({}, { "--service", "host-ok", dir .. "/ok.lua", "a", "b" })
T.eq(code, 0, "exit 0")
T.check(out:find("service=host-ok args=a,b arg0=ok.lua arg1=a", 1, true), "output: " .. out)
T.eq(#spans, 1, "the span was flushed at exit")
T.eq(spans[1] and spans[1].service, "host-ok", "service.name from --service")

T.section("service name: --service > environment > INI > script name")
local ini = T.tmpfile("host.ini")
local f = assert(io.open(ini, "w"))
f:write("[tracer]\nservice-name = from-file\n")
f:close()
code, out = run({}, { dir .. "/ok.lua" })
T.check(out:find("service=ok ", 1, true), "default: the script's base name: " .. out)
code, out = run({}, { "--config", ini, dir .. "/ok.lua" })
T.check(out:find("service=from-file ", 1, true), "INI: " .. out)
code, out = run({ OTEL_SERVICE_NAME = "from-env" }, { "--config", ini, dir .. "/ok.lua" })
T.check(out:find("service=from-env ", 1, true), "env wins over the INI: " .. out)
code, out = run({ OTEL_SERVICE_NAME = "from-env" }, { "--config", ini, "--service", "from-cli", dir .. "/ok.lua" })
T.check(out:find("service=from-cli ", 1, true), "--service wins over env: " .. out)
code, out = run({ ITUNA_CONFIG = ini }, { dir .. "/ok.lua" })
T.check(out:find("service=from-file ", 1, true), "ITUNA_CONFIG names the INI: " .. out)

T.section("script errors")
code, out, spans = run({}, { dir .. "/fails.lua" })
T.eq(code, 1, "a script error exits 1")
T.check(out:find("ituna-lua: error in " .. dir .. "/fails.lua", 1, true), "message names the script: " .. out)
T.check(out:find("fails.lua:5:", 1, true), "message has the line: " .. out)
T.check(out:find("attempt to index a nil value", 1, true), "message has the error")
T.check(out:find("stack traceback", 1, true), "message has a traceback")
local doomed = T.find(spans, "doomed")
T.check(doomed and doomed.status and doomed.status.code == 2, "the failing span was flushed with error status")

code, out, spans = run({}, { dir .. "/exits.lua" })
T.eq(code, 3, "os.exit(3) exits 3")
T.check(T.find(spans, "before-exit"), "a span open at os.exit is ended and flushed")

code, out = run({}, { dir .. "/no-such-script.lua" })
T.eq(code, 1, "missing script exits 1")
T.check(out:find("cannot run", 1, true), "says it cannot run the script: " .. out)

T.section("usage and configuration errors")
code, out = run({}, { "--bogus", dir .. "/ok.lua" })
T.eq(code, 2, "unknown option exits 2")
T.check(out:find("unknown or incomplete option '--bogus'", 1, true), out)
code, out = run({}, {})
T.eq(code, 2, "no script exits 2")
code, out = run({}, { "--config", "/nonexistent/ituna.ini", dir .. "/ok.lua" })
T.eq(code, 2, "unreadable INI exits 2")
T.check(out:find("configuration error", 1, true) and out:find("/nonexistent/ituna.ini", 1, true),
  "names the file: " .. out)
local bad = T.tmpfile("bad.ini")
f = assert(io.open(bad, "w"))
f:write("[tracer]\nno-such-key = 1\n")
f:close()
code, out = run({}, { "--config", bad, dir .. "/ok.lua" })
T.eq(code, 2, "unknown INI key exits 2")
T.check(out:find("no-such-key", 1, true), "names the key: " .. out)
code, out = run({ OTEL_BSP_MAX_QUEUE_SIZE = "lots" }, { dir .. "/ok.lua" })
T.eq(code, 2, "bad environment value exits 2")
T.check(out:find("OTEL_BSP_MAX_QUEUE_SIZE", 1, true), "names the variable: " .. out)

-- start ituna-lua in the background, wait for its marker, send sig, wait
local function run_and_signal(script, sig)
  local traces, marker, outf = T.tmpfile("sig.jsonl"), T.tmpfile("marker"), T.tmpfile("sig.out")
  local cmd = ("ITUNA_TRACES_FILE=%s OTEL_BSP_SCHEDULE_DELAY=50 %s %s %s >%s 2>&1 & pid=$!; " ..
    "i=0; while [ ! -e %s ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; " ..
    "sleep 0.3; kill -%s $pid; wait $pid; exit $?")
    :format(sh_quote(traces), sh_quote(host), sh_quote(script), sh_quote(marker), sh_quote(outf), sh_quote(marker), sig)
  local t0 = os.time()
  local _, how, c = os.execute(cmd)
  local fh = io.open(outf)
  local text = fh and fh:read("a") or ""
  if fh then fh:close() end
  return (how == "signal" and 128 + c or c), text, T.read_spans(traces), os.time() - t0
end

T.section("SIGINT stops a timer loop")
local c1, o1, s1, secs = run_and_signal(dir .. "/timer.lua", "INT")
T.eq(c1, 0, "exit 0 after SIGINT: " .. o1)
T.check(o1:find("timer stopped after 1 tick", 1, true), "ituna.sleep returned early and the loop ended: " .. o1)
T.check(secs < 25, "stopped promptly (" .. secs .. " s), not after the 30 s sleep")
T.check(T.find(s1, "tick"), "spans flushed after the signal")

T.section("SIGTERM stops a consumer loop")
local c2, o2, s2 = run_and_signal(dir .. "/consume.lua", "TERM")
T.eq(c2, 0, "exit 0 after SIGTERM: " .. o2)
T.check(o2:find("loop ended normally after 3 message(s)", 1, true), "the for loop ended normally: " .. o2)
local _, processes = T.find(s2, "process host-topic")
T.eq(#processes, 3, "three CONSUMER spans flushed")
for _, p in ipairs(processes) do
  T.check(not (p.status and p.status.code == 2), "no CONSUMER span marked error by the stop")
end

T.done()
