/*
 * A C program that embeds Lua 5.4 and runs the module in two lua_States on
 * two threads at once, each with its own client, doing create, update and
 * delete round trips of the registry, and a content policy's create and
 * batch delete, against the emulator. Exit 0 when both threads
 * finished every round trip with the right results.
 *
 *   two_states BASE_URL TOKEN ROUNDS
 * LUA_PATH and LUA_CPATH must find the module (the spec sets them).
 *
 * Both threads load the module at the same time, then meet at a barrier
 * before their round trips: lua-cjson, as it loads, writes a process-wide
 * byte that every decode reads (the locale's decimal point), so a state
 * that loads it while another decodes is a race in lua-cjson (a benign
 * one: the same value each time) that helgrind would rightly report.
 */
#define _POSIX_C_SOURCE 200809L
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static const char *const chunk =
    "local base_url, token, rounds, name = ...\n"
    "local es = require('cloudflare.email_security')\n"
    "local cf = es.new{ account_id = 'thread' .. name, api_token = token, base_url = base_url }\n"
    "local reg = cf.impersonation_registry\n"
    "for i = 1, rounds do\n"
    "  local made = assert(reg:create{ name = name .. i, email = name .. i .. '@example.com',\n"
    "                                  is_email_regex = false })\n"
    "  local updated = assert(reg:update(made.id, { comments = 'round ' .. i }))\n"
    "  assert(updated.comments == 'round ' .. i and updated.name == name .. i, 'wrong update result')\n"
    "  local gone = assert(reg:delete(made.id))\n"
    "  assert(gone.id == made.id, 'wrong delete result')\n"
    "  local _, err = reg:get(made.id)\n"
    "  assert(err and err.status == 404, 'entry still there')\n"
    "  local cp = assert(cf.content_policies:create{ enabled = true, name = name .. i,\n"
    "                                                pattern = 'p' .. i, targets = { 'SUBJECT' } })\n"
    "  local done = assert(cf.content_policies:batch{ deletes = { cp.id } })\n"
    "  assert(done.deletes[1].id == cp.id, 'wrong batch result')\n"
    "  -- three creates in flight at once (libcurl's multi handle), then a\n"
    "  -- listing whose pages come two at a time, then the three deleted\n"
    "  local made3 = cf:concurrently({ 1, 2, 3 }, function(k)\n"
    "    return reg:create{ name = name .. i .. '-' .. k, email = name .. i .. '-' .. k .. '@example.com',\n"
    "                       is_email_regex = false }\n"
    "  end)\n"
    "  local listed = assert(reg:all{ per_page = 1 })\n"
    "  assert(#listed == 3, 'wrong listing: ' .. #listed)\n"
    "  local gone3 = cf:concurrently(made3, function(r) return reg:delete(assert(r[1]).id) end)\n"
    "  for k = 1, 3 do assert(gone3[k][1], tostring(gone3[k][2])) end\n"
    "end\n"
    "cf:close()\n"
    "return rounds\n";

static pthread_barrier_t loaded;

typedef struct {
    const char *base_url, *token, *name;
    int rounds, done;
    char error[512];
} job;

static void *run(void *arg)
{
    job *j = arg;
    lua_State *L = luaL_newstate();
    int rc;
    if (L == NULL) {
        snprintf(j->error, sizeof j->error, "luaL_newstate: out of memory");
        pthread_barrier_wait(&loaded);      /* the other thread waits for us */
        return NULL;
    }
    luaL_openlibs(L);
    rc = luaL_dostring(L, "require('cloudflare.email_security')");
    pthread_barrier_wait(&loaded);
    if (rc != LUA_OK) {
        snprintf(j->error, sizeof j->error, "%s", lua_tostring(L, -1));
    } else if (luaL_loadstring(L, chunk) != LUA_OK) {
        snprintf(j->error, sizeof j->error, "%s", lua_tostring(L, -1));
    } else {
        lua_pushstring(L, j->base_url);
        lua_pushstring(L, j->token);
        lua_pushinteger(L, j->rounds);
        lua_pushstring(L, j->name);
        if (lua_pcall(L, 4, 1, 0) != LUA_OK)
            snprintf(j->error, sizeof j->error, "%s", lua_tostring(L, -1));
        else
            j->done = (int)lua_tointeger(L, -1);
    }
    lua_close(L);
    return NULL;
}

int main(int argc, char **argv)
{
    job jobs[2] = { { 0 }, { 0 } };
    pthread_t threads[2];
    int i, ok = 1;

    if (argc != 4) {
        fprintf(stderr, "usage: two_states BASE_URL TOKEN ROUNDS\n");
        return 2;
    }
    pthread_barrier_init(&loaded, NULL, 2);
    for (i = 0; i < 2; i++) {
        jobs[i].base_url = argv[1];
        jobs[i].token = argv[2];
        jobs[i].rounds = atoi(argv[3]);
        jobs[i].name = i == 0 ? "a" : "b";
        if (pthread_create(&threads[i], NULL, run, &jobs[i]) != 0) {
            /* a first thread would wait at the barrier for ever: end the
             * process, which ends it too */
            fprintf(stderr, "two_states: could not start thread %s\n", jobs[i].name);
            exit(1);
        }
    }
    for (i = 0; i < 2; i++) {
        pthread_join(threads[i], NULL);
        printf("thread %s: %d of %d round trips%s%s\n", jobs[i].name, jobs[i].done, jobs[i].rounds,
               jobs[i].error[0] ? ": " : "", jobs[i].error);
        ok = ok && jobs[i].done == jobs[i].rounds;
    }
    pthread_barrier_destroy(&loaded);
    return ok ? 0 : 1;
}
