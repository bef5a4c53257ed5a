/* A Lua module for spec/client/wire_limit_spec.lua only: fork() and
 * waitpid(), which Lua has no way to call, to show what a client does in a
 * child process forked while its requests' thread ran. Built by the spec:
 *
 *   cc -shared -fPIC $(pkg-config --cflags lua5.4) -o fork_for_spec.so spec/support/fork_for_spec.c
 */
#define _POSIX_C_SOURCE 200809L
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>

/* fork() -> 0 in the child, the child's pid in the parent */
static int do_fork(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)fork());
    return 1;
}

/* wait(pid) -> the exit code, or -(the signal) when a signal ended it */
static int do_wait(lua_State *L)
{
    int status = 0;
    pid_t pid = (pid_t)luaL_checkinteger(L, 1);
    if (waitpid(pid, &status, 0) != pid)
        return luaL_error(L, "waitpid failed");
    lua_pushinteger(L, WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status));
    return 1;
}

/* alarm(seconds): a child that hangs is ended by SIGALRM */
static int do_alarm(lua_State *L)
{
    alarm((unsigned)luaL_checkinteger(L, 1));
    return 0;
}

/* exit(code) without Lua's own ending (no finalizers of the parent's
 * objects in the child) */
static int do_exit(lua_State *L)
{
    _exit((int)luaL_checkinteger(L, 1));
    return 0;
}

int luaopen_fork_for_spec(lua_State *L)
{
    lua_newtable(L);
    lua_pushcfunction(L, do_fork);
    lua_setfield(L, -2, "fork");
    lua_pushcfunction(L, do_wait);
    lua_setfield(L, -2, "wait");
    lua_pushcfunction(L, do_alarm);
    lua_setfield(L, -2, "alarm");
    lua_pushcfunction(L, do_exit);
    lua_setfield(L, -2, "exit");
    return 1;
}
