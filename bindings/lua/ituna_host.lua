-- ituna_host.lua - how ituna-lua (host.c) runs the script, in Lua: called with the
-- program's name, the script's index in argv and argv, it sets the global `arg`,
-- replaces os.exit, runs the script under a message handler that adds a traceback,
-- prints what went wrong and returns the exit status. host.c compiles it in
-- (embed_lua.cmake).
local progname, script = ...
local argv = table.pack(select(3, ...))
local path = argv[script + 1]

-- The global `arg` as lua.c sets it: arg[0] the script, arg[1..] its arguments,
-- negative indices the host's own options.
arg = {}
for i = 1, argv.n do arg[i - 1 - script] = argv[i] end

-- os.exit replacement: unwinds to the host with an exit object so that spans,
-- consumers and producers are still finished (the stock os.exit skips that).
local exit_mt = { __name = "ituna-lua.exit" }
function os.exit(code)
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
  -- without the last two frames, this chunk's xpcall: the traceback ends at the script
  return (debug.traceback(msg, 2):gsub("\n\t%[C%]: in function 'xpcall'\n\tituna_host%.lua:%d+: in main chunk$", ""))
end

local chunk, err = loadfile(path)
if not chunk then
  io.stderr:write(("%s: cannot run %s: %s\n"):format(progname, path, err))
  return 1
end
local ok, e = xpcall(chunk, msgh, table.unpack(argv, script + 2, argv.n))
if ok then return 0 end
if getmetatable(e) == exit_mt then return e.code end
io.stderr:write(("%s: error in %s: %s\n"):format(progname, path, e))
return 1
