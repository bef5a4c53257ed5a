/*
 * The few Lua C API differences this module meets between Lua 5.1 (and
 * LuaJIT) and 5.4, under names of our own: LuaJIT's headers declare some
 * 5.2 functions (luaL_setfuncs, luaL_setmetatable) themselves, and a macro
 * of the same name would shadow them. Everything here is static, so that no
 * symbol of ours can clash with the host's own copy of the same helper.
 */
#ifndef ES_COMPAT_H
#define ES_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM < 504
#define lua_newuserdatauv(L, size, nuv) lua_newuserdata((L), (size))
#endif

#if LUA_VERSION_NUM < 502
/* 5.1 has neither luaL_setfuncs nor luaL_setmetatable. */
static inline void es_setfuncs(lua_State *L, const luaL_Reg *l, int nup)
{
    int i;
    for (; l->name != NULL; l++) {
        for (i = 0; i < nup; i++)
            lua_pushvalue(L, -nup);
        lua_pushcclosure(L, l->func, nup);
        lua_setfield(L, -(nup + 2), l->name);
    }
    lua_pop(L, nup);
}
#define es_setmetatable(L, name) \
    (luaL_getmetatable((L), (name)), lua_setmetatable((L), -2))
#define es_rawlen(L, i) lua_objlen((L), (i))
#else
#define es_setfuncs(L, l, nup) luaL_setfuncs((L), (l), (nup))
#define es_setmetatable(L, name) luaL_setmetatable((L), (name))
#define es_rawlen(L, i) lua_rawlen((L), (i))
#endif

#endif
