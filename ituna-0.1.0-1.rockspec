-- LuaRocks package of the `ituna` Lua module (bindings/lua), built with CMake
-- together with the core it links statically. Needs the C dependencies first:
-- librdkafka-dev, libcurl4-openssl-dev, libcjson-dev, zlib1g-dev, liblua5.4-dev.
-- From a checkout (make builds the current directory; source is not fetched):
--   luarocks --lua-version 5.4 make ituna-0.1.0-1.rockspec [--tree DIR]
-- (ctest lua_luarocks_make runs exactly that). The git tag v0.1.0 named below is
-- created when 0.1.0 is released; `luarocks install`/`build` from the rockspec
-- alone needs it, and each release adds its own ituna-X.Y.Z-1.rockspec.
package = "ituna"
version = "0.1.0-1"
source = {
  url = "git+https://github.com/ituna/ituna-core.git",
  tag = "v0.1.0",
}
description = {
  summary = "Tracing for Kafka services: OpenTelemetry spans, W3C context in Kafka headers",
  detailed = [[
ituna-core is a C11 tracing library: spans exported over OTLP (or to a JSON-lines
file), W3C Trace Context carried in Kafka message headers, and a traced Kafka
producer and consumer on librdkafka. This rock is its Lua 5.4 binding:
tracer:span(), spans as to-be-closed values, inject/extract, ituna.producer and
ituna.consumer with at-least-once commits and a dead-letter topic.
]],
  homepage = "https://github.com/ituna/ituna-core",
  license = "MIT",
}
dependencies = {
  "lua >= 5.4, < 5.5",
}
-- The C libraries are found by CMake through pkg-config (rdkafka, libcurl,
-- libcjson, zlib), which knows Debian's multiarch include paths.
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    ITUNA_LUA_CMOD_DIR = "$(LIBDIR)",
    BUILD_TESTING = "OFF",
    ITUNA_BUILD_BENCH = "OFF",
    ITUNA_INSTALL_CORE = "OFF", -- the module alone: it links the core statically
  },
}
