-- LuaRocks package of the `ituna` Lua module (bindings/lua), built with CMake
-- together with the core it links statically. The scm rockspec builds what the
-- source tree holds:
--   from a clone:   luarocks --lua-version 5.4 make [--tree DIR]
--   from the repo:  luarocks --lua-version 5.4 install ituna-scm-1.rockspec
-- (the second clones source.url's main branch first). C libraries it needs, with
-- their development files (Debian: librdkafka-dev libcurl4-openssl-dev libcjson-dev
-- zlib1g-dev liblua5.4-dev; tools/install-deps.sh installs them), are checked by
-- luarocks before building; elsewhere than /usr or /usr/local name the prefix, e.g.
-- `luarocks make RDKAFKA_DIR=/opt/librdkafka`. tests/lua/luarocks_make.sh runs both.
rockspec_format = "3.0"
package = "ituna"
version = "scm-1"
source = {
  url = "git+https://github.com/ituna/ituna-core.git",
  branch = "main",
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
external_dependencies = {
  RDKAFKA = { header = "librdkafka/rdkafka.h", library = "rdkafka" },
  -- the library only: Debian keeps curl/curl.h in a multiarch include directory
  -- that luarocks does not search (CMake's pkg-config check finds it)
  CURL = { library = "curl" },
  CJSON = { header = "cjson/cJSON.h", library = "cjson" },
  ZLIB = { header = "zlib.h", library = "z" },
}
-- CMake finds the libraries with pkg-config; the prefixes luarocks found (or was
-- given as NAME_DIR=...) go first on its search path, so they are the ones used.
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    CMAKE_PREFIX_PATH = "$(RDKAFKA_DIR);$(CURL_DIR);$(CJSON_DIR);$(ZLIB_DIR)",
    ITUNA_LUA_CMOD_DIR = "$(LIBDIR)",
    BUILD_TESTING = "OFF",
    ITUNA_BUILD_BENCH = "OFF",
    ITUNA_INSTALL_CORE = "OFF", -- the module alone: it links the core statically
  },
}
