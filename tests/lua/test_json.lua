-- test_json.lua - the JSON codec of msg:json() and publish(table) (bindings/lua/ilua_json.c)
-- through a real round trip on the embedded broker: what JSON means in Lua, exact
-- numbers, escapes, and what is refused with a reason.
local T = require "testlib"
local ituna = require "ituna"

local broker = ituna.start_embedded_broker { brokers = 1, partitions = 4 }
ituna.init(T.file_tracer_opts("lua-json", T.tmpfile("json.jsonl")))
local topic = ("lua-json-%d%d"):format(os.time(), math.random(1, 1e6))
local producer = ituna.producer { bootstrap = broker.bootstrap }
local consumer = ituna.consumer { bootstrap = broker.bootstrap, group = topic, topics = { topic },
                                  ["auto.offset.reset"] = "earliest" }

local function roundtrip(value)
  producer:publish(topic, value)
  producer:flush(10)
  local msg = assert(consumer:poll(20), "no message within 20 s")
  return msg
end

T.section("decoding: types, exact integers, escapes")
do
  local msg = roundtrip('{"s":"a\\nb\\t\\"q\\" \\u00e9\\ud83d\\ude00","i":123,"big":9007199254740991,' ..
                        '"neg":-42,"f":1.5,"e":1e2,"t":true,"n":null,"a":[1,[2]],"o":{}}')
  local v = msg:json()
  T.eq(v.s, 'a\nb\t"q" \u{e9}\u{1f600}', "escapes, \\u and a surrogate pair decode to UTF-8")
  T.eq(math.type(v.i), "integer", "an integral number is a Lua integer")
  T.eq(v.big, 9007199254740991, "2^53-1 exactly")
  T.eq(v.neg, -42, "negative")
  T.eq(math.type(v.f), "float", "1.5 is a float")
  T.eq(v.e, 100, "1e2 is the integer 100")
  T.eq(v.t, true, "true")
  T.eq(v.n, ituna.null, "null is ituna.null")
  T.eq(v.a[2][1], 2, "nested arrays")
  T.eq(next(v.o), nil, "empty object")
  msg:done("ok")
end

T.section("decoding: what is not JSON is refused with where")
for _, bad in ipairs { '{"a":1,}', '[1 2]', '-1e', '"\\u12G4"', '"\\ud800"', ('['):rep(70) .. (']'):rep(70) } do
  local msg = roundtrip(bad)
  local ok, err = pcall(msg.json, msg)
  T.check(not ok and tostring(err):match("malformed") and (tostring(err):match("invalid JSON at byte %d+") or
          tostring(err):match("nested deeper than 64")), ("%q refused: %s"):format(bad, tostring(err)))
  msg:done("ok")
end

T.section("encoding: publish(table) writes exact JSON")
do
  local msg = roundtrip { 1, 2.5, "x\"y\n", true, ituna.null, 4611686018427387904, { k = "v" } }
  T.eq(msg.value, '[1,2.5,"x\\"y\\n",true,null,4611686018427387904,{"k":"v"}]', "array, escapes, a 63-bit integer")
  msg:done("ok")
  msg = roundtrip { f = 0.1, three = 3.0 }
  local v = msg:json()
  T.eq(v.f, 0.1, "0.1 reads back the same")
  T.eq(math.type(v.three), "integer", "3.0 is written as 3")
  msg:done("ok")
end

T.section("encoding: refused with the value's path")
local t = {}
t.self = t
T.raises(".self.self: nested deeper than 64 (a cycle?)", producer.publish, producer, topic, t)
T.raises("cannot encode value.list[2]: string contains a NUL byte", producer.publish, producer, topic,
         { list = { "ok", "a\0b" } })
T.raises("cannot encode value.f: a function has no JSON form", producer.publish, producer, topic, { f = print })

consumer:close()
producer:close()
broker:stop()
T.done()
