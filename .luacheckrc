std = "lua54"
max_line_length = 120
-- specs hold long literal answers and messages
files["spec"] = { std = "+busted", max_line_length = 160 }
files["emulator/spec"] = { std = "+busted", max_line_length = 160 }
-- `jit` is read only to name LuaJIT in the User-Agent.
read_globals = { "jit" }
-- runs inside nginx, where `ngx` is the host's API
files["spec/support/nginx_app.lua"] = { read_globals = { "ngx" } }

-- written by tools/gen_resources.lua: a long enum stays on one line
files["lua/cloudflare/email_security/resources"] = { max_line_length = false }
