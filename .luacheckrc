std = "lua54"
max_line_length = 120
-- specs hold long literal answers and messages
files["spec"] = { std = "+busted", max_line_length = 160 }
-- `jit` is read only to name LuaJIT in the User-Agent.
read_globals = { "jit" }
