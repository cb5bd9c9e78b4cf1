# embed_lua.cmake - `cmake -DIN=x.lua -DOUT=x.c -DNAME=sym -P embed_lua.cmake` writes a C file
# holding IN's bytes as `const unsigned char sym[]` and `const size_t sym_size`: the module
# carries its Lua glue (ituna_glue.lua) inside, with no file to find at run time.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" digits)
math(EXPR size "${digits} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUT} "/* generated from ${IN} by embed_lua.cmake */\n#include <stddef.h>\n"
  "extern const unsigned char ${NAME}[];\nextern const size_t ${NAME}_size;\n"
  "const unsigned char ${NAME}[] = {${bytes}};\nconst size_t ${NAME}_size = ${size};\n")
