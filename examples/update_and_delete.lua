-- The main job: update an impersonation registry entry, then delete it.
--
-- On the local emulator, which it starts, unless asked plainly for the
-- real API: DEMO_REAL_API=1 (`make demo-real-api`). Credentials a user
-- keeps exported for other tools (wrangler's CLOUDFLARE_API_TOKEN and
-- CLOUDFLARE_ACCOUNT_ID) are left alone otherwise: a demo never changes a
-- real account by surprise. Asked for the real API, it takes the account
-- and credential from the environment (CLOUDFLARE_ACCOUNT_ID and
-- CLOUDFLARE_API_TOKEN, or CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY; and
-- CLOUDFLARE_BASE_URL, if set), names the account and the API first, and
-- works on an entry it creates for the purpose.
--
--   make demo | make demo-real-api   (or: lua5.4 examples/update_and_delete.lua, with the paths set)

local es = require("cloudflare.email_security")

local function set(name) local v = os.getenv(name) return v ~= nil and v ~= "" end

-- nil when the environment names an account and a credential, else what
-- is missing
local function missing_setting()
  local credential = set("CLOUDFLARE_API_TOKEN") or (set("CLOUDFLARE_EMAIL") and set("CLOUDFLARE_API_KEY"))
  if not set("CLOUDFLARE_ACCOUNT_ID") and not credential then return "no credentials set" end
  if not set("CLOUDFLARE_ACCOUNT_ID") then return "CLOUDFLARE_ACCOUNT_ID is not set" end
  if not credential then
    return "no credential set (CLOUDFLARE_API_TOKEN, or CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY)"
  end
end

local function show(label, value, err)
  if value == nil then
    io.stderr:write(label, " failed: ", tostring(err), "\n")
    return false
  end
  local parts = {}
  for _, k in ipairs({ "id", "name", "email", "is_email_regex", "comments", "provenance", "modified_at" }) do
    if value[k] ~= nil then
      parts[#parts + 1] = k .. "=" .. (value[k] == es.null and "null" or tostring(value[k]))
    end
  end
  print(("%-8s %s"):format(label, table.concat(parts, "  ")))
  return true
end

local emulator, cf
if os.getenv("DEMO_REAL_API") == "1" then
  local missing = missing_setting()
  if missing then
    io.stderr:write("DEMO_REAL_API=1 asks for the real API, but " .. missing .. ": nothing was done\n")
    os.exit(1)
  end
  cf = es.new()
  print(("account %s at %s: creating, updating and deleting one impersonation registry entry there")
    :format(cf.account_id, cf.base_url))
else
  emulator = require("emulator.process").start()
  local kept = (set("CLOUDFLARE_ACCOUNT_ID") or set("CLOUDFLARE_API_TOKEN"))
    and " (the CLOUDFLARE_* credentials in the environment are left alone: make demo-real-api uses them)" or ""
  print("using the local emulator at " .. emulator.base_url .. kept)
  cf = es.new({ account_id = "023e105f4ecef8ad9ca31a8372d0c353", api_token = emulator.token,
                base_url = emulator.base_url })
end

local reg = cf.impersonation_registry
local ok
local entry, err = reg:create({ name = "Demo Person", email = "demo.person@example.com",
                                is_email_regex = false, comments = "made by examples/update_and_delete.lua" })
ok = show("created", entry, err)
if ok then
  local updated
  updated, err = reg:update(entry.id, { name = "Demo Person (renamed)", comments = es.null })
  ok = show("updated", updated, err) and ok
  local gone
  gone, err = reg:delete(entry.id)
  ok = show("deleted", gone, err) and ok
  local again
  again, err = reg:get(entry.id)
  if again == nil and err.status == 404 then
    print("get      " .. tostring(err))
  else
    ok = false
    io.stderr:write("the entry is still there after delete\n")
  end
end

cf:close()
if emulator then emulator.stop() end
os.exit(ok and 0 or 1)
