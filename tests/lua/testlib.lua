-- testlib.lua - the small harness the Lua tests share: checks that count
-- failures, a temp directory, reading spans back from an OTLP JSON-lines file
-- (the file exporter's output), and running a child process.
local M = {}

local failures, checks = 0, 0

local function where(level)
  local info = debug.getinfo(level or 3, "Sl")
  return ("%s:%d"):format(info.short_src, info.currentline)
end

function M.check(cond, msg)
  checks = checks + 1
  if not cond then
    failures = failures + 1
    io.stderr:write(("%s: CHECK failed: %s\n"):format(where(), tostring(msg)))
  end
  return cond
end

function M.eq(a, b, msg)
  checks = checks + 1
  if a ~= b then
    failures = failures + 1
    io.stderr:write(("%s: CHECK failed: %s: %q ~= %q\n"):format(where(), msg or "eq", tostring(a), tostring(b)))
  end
  return a == b
end

-- fn must raise an error whose text contains pattern (plain find)
function M.raises(pattern, fn, ...)
  checks = checks + 1
  local ok, err = pcall(fn, ...)
  if ok then
    failures = failures + 1
    io.stderr:write(("%s: expected an error containing %q, got none\n"):format(where(), pattern))
    return nil
  end
  local text = tostring(err)
  if not text:find(pattern, 1, true) then
    failures = failures + 1
    io.stderr:write(("%s: expected an error containing %q, got %q\n"):format(where(), pattern, text))
  end
  return err
end

function M.section(name) io.write("-- ", name, "\n") end

function M.done()
  io.write(("%d checks, %d failed\n"):format(checks, failures))
  os.exit(failures == 0 and 0 or 1, true)
end

local tmp_base = os.getenv("ITUNA_TEST_TMP") or "/tmp"
local counter = 0
-- a fresh path under the test temp dir (removed first if it exists)
function M.tmpfile(stem)
  counter = counter + 1
  local path = ("%s/%s-%d-%d-%d"):format(tmp_base, stem, os.time(), math.random(1, 1e9), counter)
  os.remove(path)
  return path
end

-- settings for ituna.init that send spans to a fresh JSON-lines file
function M.file_tracer_opts(service, path)
  return {
    service_name = service,
    ["exporter.type"] = "file",
    ["exporter.file"] = path,
    ["exporter.schedule-delay"] = 50,
  }
end

-- every span in an OTLP JSON-lines file, each with .service added
function M.read_spans(path)
  local json_decode = M.json_decode
  local spans = {}
  local f = io.open(path, "r")
  if not f then return spans end
  for line in f:lines() do
    if line:match("%S") then
      local doc = json_decode(line)
      for _, rs in ipairs(doc.resourceSpans or {}) do
        local service
        for _, a in ipairs(rs.resource and rs.resource.attributes or {}) do
          if a.key == "service.name" then service = a.value.stringValue end
        end
        for _, ss in ipairs(rs.scopeSpans or {}) do
          for _, s in ipairs(ss.spans or {}) do
            s.service = service
            spans[#spans + 1] = s
          end
        end
      end
    end
  end
  f:close()
  return spans
end

-- attribute value of an exported span (string, int as number, double, bool)
function M.attr(span_or_event, key)
  for _, a in ipairs(span_or_event.attributes or {}) do
    if a.key == key then
      local v = a.value
      if v.stringValue ~= nil then return v.stringValue end
      if v.intValue ~= nil then return math.tointeger(tonumber(v.intValue)) end
      if v.doubleValue ~= nil then return v.doubleValue end
      if v.boolValue ~= nil then return v.boolValue end
      if v.arrayValue ~= nil then return v.arrayValue end
      return v
    end
  end
  return nil
end

function M.find(spans, name)
  local found = {}
  for _, s in ipairs(spans) do if s.name == name then found[#found + 1] = s end end
  return found[1], found
end

-- a JSON decoder for the test's own reading of exported files: uses the
-- module's msg decoding through a tiny pure-Lua parser (independent of the
-- binding under test, so an encoding bug cannot hide itself)
do
  local function skip(s, i) return s:find("[^ \t\r\n]", i) or #s + 1 end
  local decode_value
  local escapes = { b = "\b", f = "\f", n = "\n", r = "\r", t = "\t", ['"'] = '"', ["\\"] = "\\", ["/"] = "/" }
  local function decode_string(s, i)
    local out, j = {}, i + 1
    while true do
      local c = s:sub(j, j)
      if c == '"' then return table.concat(out), j + 1 end
      if c == "\\" then
        local e = s:sub(j + 1, j + 1)
        if e == "u" then
          local cp = tonumber(s:sub(j + 2, j + 5), 16)
          out[#out + 1] = utf8.char(cp)
          j = j + 6
        else
          out[#out + 1] = assert(escapes[e], "bad escape")
          j = j + 2
        end
      elseif c == "" then
        error("unterminated string")
      else
        out[#out + 1] = c
        j = j + 1
      end
    end
  end
  function decode_value(s, i)
    i = skip(s, i)
    local c = s:sub(i, i)
    if c == "{" then
      local obj = {}
      i = skip(s, i + 1)
      if s:sub(i, i) == "}" then return obj, i + 1 end
      while true do
        local k
        k, i = decode_string(s, skip(s, i))
        i = skip(s, i)
        assert(s:sub(i, i) == ":", "expected :")
        obj[k], i = decode_value(s, i + 1)
        i = skip(s, i)
        local d = s:sub(i, i)
        if d == "}" then return obj, i + 1 end
        assert(d == ",", "expected , or }")
        i = i + 1
      end
    elseif c == "[" then
      local arr, n = {}, 0 -- n, not #arr: a null item keeps its place
      i = skip(s, i + 1)
      if s:sub(i, i) == "]" then return arr, i + 1 end
      while true do
        n = n + 1
        arr[n], i = decode_value(s, i)
        i = skip(s, i)
        local d = s:sub(i, i)
        if d == "]" then return arr, i + 1 end
        assert(d == ",", "expected , or ]")
        i = i + 1
      end
    elseif c == '"' then
      return decode_string(s, i)
    elseif s:sub(i, i + 3) == "true" then return true, i + 4
    elseif s:sub(i, i + 4) == "false" then return false, i + 5
    elseif s:sub(i, i + 3) == "null" then return nil, i + 4
    else
      local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", i)
      assert(num and #num > 0, "bad JSON at " .. i)
      return tonumber(num), i + #num
    end
  end
  function M.json_decode(s)
    local v = decode_value(s, 1)
    return v
  end
end

-- run a shell command; returns exit code and captured stdout+stderr
function M.run(cmd)
  local out = M.tmpfile("run-out")
  local ok, how, code = os.execute(cmd .. " >" .. out .. " 2>&1")
  local f = io.open(out)
  local text = f and f:read("a") or ""
  if f then f:close() end
  os.remove(out)
  if how == "signal" then return 128 + code, text end
  return code, text
end

function M.sleep(s) os.execute("sleep " .. s) end

return M
