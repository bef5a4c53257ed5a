-- The second part of `make demo`: make an account's allow policies equal
-- to a CSV file (examples/partners.csv): plan, show the plan, apply, and
-- plan again to show there is nothing left to do.
--
-- It always runs against the local emulator, which it starts and fills
-- first: apply deletes the policies the file does not list, and a demo
-- must not do that to a real account. On a real one the same calls run as
--   cloudflare-email-security allow_policies plan partners.csv
--   cloudflare-email-security allow_policies apply partners.csv

local es = require("cloudflare.email_security")

local ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
local file = arg and arg[1] or "examples/partners.csv"

local emulator = require("emulator.process").start()
print("plan and apply " .. file .. " against the local emulator at " .. emulator.base_url)
local policy = { pattern_type = "EMAIL", is_regex = false, is_trusted_sender = true, is_exempt_recipient = false,
                 is_acceptable_sender = false, verify_sender = true }
local function with(fields)
  local out = {}
  for k, v in pairs(policy) do out[k] = v end
  for k, v in pairs(fields) do out[k] = v end
  return out
end
-- what the account holds before: one policy as the file has it, one to
-- change, one the file no longer lists
emulator.seed(ACCOUNT, {
  with({ pattern = "billing@supplier.example" }),
  with({ pattern = "ceo@partner.example", comments = "old note" }),
  with({ pattern = "former@partner.example" }),
}, "allow_policies")

local cf = es.new({ account_id = ACCOUNT, api_token = emulator.token, base_url = emulator.base_url })
local ok = false
local desired, why = es.read_entries(file, "allow_policies")
if not desired then
  io.stderr:write(why, "\n")
else
  local plan, err = cf.allow_policies:plan(desired)
  if not plan then
    io.stderr:write("plan failed: ", tostring(err), "\n")
  else
    print(plan)
    local summary
    summary, err = plan:apply()
    if not summary then
      io.stderr:write("apply failed: ", tostring(err), "\n")
    else
      print("applied: " .. tostring(summary))
      local again = assert(cf.allow_policies:plan(desired))
      print("plan again: " .. tostring(again))
      ok = again:changes() == 0
    end
  end
end

cf:close()
emulator.stop()
os.exit(ok and 0 or 1)
