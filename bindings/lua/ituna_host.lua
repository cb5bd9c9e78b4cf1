-- ituna_host.lua - the cold part of ituna-lua (host.c), in Lua: called with the
-- program's name, its version line and argv, it reads the command line and returns an
-- exit status (after the usage, the version or what is wrong), or what host.c sets the
-- tracer up from and run(), which sets the global `arg`, replaces os.exit, runs the
-- script under a message handler that adds a traceback, prints what went wrong and
-- returns the exit status. host.c compiles it in (embed_lua.cmake).
local progname, version = ...
local argv = table.pack(select(3, ...))

local function usage(out)
  out:write(([[
usage: %s [--config PATH] [--schema PATH] [--service NAME] script.lua [args...]
  --config PATH   INI file (default: $ITUNA_CONFIG when set)
  --schema PATH   the application's config schema, making its sections known
                  (default: $ITUNA_CONFIG_SCHEMA when set)
  --service NAME  service.name (default: OTEL_SERVICE_NAME, the INI's
                  [tracer] service-name, else the script's base name)
  --version       print the versions and exit
Settings: INI file < environment (OTEL_*, ITUNA_*) < command line.
SIGINT/SIGTERM stop consumer loops gracefully; a second one exits at once.
]]):format(progname))
end

local options = { ["--config"] = "config", ["--schema"] = "schema", ["--service"] = "service" }
local host = { config = os.getenv("ITUNA_CONFIG") }
local script -- the script's index in argv (argv[1] is the program)
local i = 2
while i <= argv.n do
  local a = argv[i]
  if options[a] and i < argv.n then
    host[options[a]] = argv[i + 1]
    i = i + 1
  elseif a == "--help" or a == "-h" then
    usage(io.stdout)
    return 0
  elseif a == "--version" then
    io.stdout:write(version, "\n")
    return 0
  elseif a:sub(1, 1) == "-" and a ~= "-" then
    io.stderr:write(("%s: unknown or incomplete option '%s'\n"):format(progname, a))
    usage(io.stderr)
    return 2
  else
    script = i
    break
  end
  i = i + 1
end
if not script then
  io.stderr:write(("%s: no script given\n"):format(progname))
  usage(io.stderr)
  return 2
end
local path = argv[script]
-- the default service.name: the script's base name without its extension
host.script_name = path:match("[^/]*$"):gsub("(.)%.[^.]*$", "%1")

-- os.exit replacement: unwinds to the host with an exit object so that spans,
-- consumers and producers are still finished (the stock os.exit skips that).
local exit_mt = { __name = "ituna-lua.exit" }
local function exit(code)
  if code == nil or code == true then
    code = 0
  elseif code == false then
    code = 1
  else
    local n = (type(code) == "number" or type(code) == "string") and tonumber(code)
    local i = n and math.tointeger(n)
    if not i then -- luaL_checkinteger's error
      local why = n and "number has no integer representation" or "number expected, got " .. type(code)
      error(("bad argument #1 to '%s' (%s)"):format(debug.getinfo(1, "n").name or "?", why), 2)
    end
    code = i
  end
  error(setmetatable({ code = code }, exit_mt))
end

-- Message handler: an exit object passes through; anything else gets a traceback.
local function msgh(e)
  if getmetatable(e) == exit_mt then return e end
  local msg = (type(e) == "string" or type(e) == "number") and tostring(e)
  if not msg then
    local mt = getmetatable(e)
    local s = type(mt) == "table" and mt.__tostring and mt.__tostring(e)
    msg = type(s) == "string" and s or ("(error object is a %s value)"):format(type(e))
  end
  -- without the last two frames, run's xpcall: the traceback ends at the script
  return (debug.traceback(msg, 2):gsub("\n\t%[C%]: in function 'xpcall'\n\tituna_host%.lua:%d+: in function <[^>]*>$", ""))
end

function host.run()
  -- The global `arg` as lua.c sets it: arg[0] the script, arg[1..] its arguments,
  -- negative indices the host's own options.
  arg = {}
  for i = 1, argv.n do arg[i - script] = argv[i] end
  os.exit = exit
  local chunk, err = loadfile(path)
  if not chunk then
    io.stderr:write(("%s: cannot run %s: %s\n"):format(progname, path, err))
    return 1
  end
  local ok, e = xpcall(chunk, msgh, table.unpack(argv, script + 1, argv.n))
  if ok then return 0 end
  if getmetatable(e) == exit_mt then return e.code end
  io.stderr:write(("%s: error in %s: %s\n"):format(progname, path, e))
  return 1
end

return host
