-- The main job: update an impersonation registry entry, then delete it.
--
-- With credentials in the environment (CLOUDFLARE_ACCOUNT_ID and
-- CLOUDFLARE_API_TOKEN, or CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY) it runs
-- against the real API, on an entry it creates for the purpose. Without
-- them it starts the local emulator and runs there.
--
--   make demo      (or: lua5.4 examples/update_and_delete.lua, with the paths set)

local es = require("cloudflare.email_security")

local function set(name) local v = os.getenv(name) return v ~= nil and v ~= "" end

-- nil when the environment names an account and a credential, else what
-- is missing, for the line that says why the emulator is used
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
local missing = missing_setting()
if not missing then
  cf = es.new()
  print(("using %s with the credentials from the environment"):format(
    cf.base_url == "https://api.cloudflare.com/client/v4" and "the Cloudflare API" or cf.base_url))
else
  emulator = require("emulator.process").start()
  print(missing .. ": using the local emulator at " .. emulator.base_url)
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
