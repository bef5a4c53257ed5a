-- The library's messages in the tool's own words. A message the module
-- writes for a Lua caller names its options as Lua does (`force = true`,
-- `delete_domains`, `max_retry_wait`); a shell user can only give the
-- tool's flags, so every message the tool prints passes through here and
-- names the flag instead. The library keeps its words: they are right for
-- the code that calls it.

local words = {}

-- Longest first: "force = true (--force)" must go whole before "force =
-- true" would leave "--force (--force)". %f[%w_] keeps a name from
-- matching inside a longer one (a field called max_retries_total).
local REWRITES = {
  { "force = true %(%-%-force%)", "--force" },
  { "%-%-force %(force = true%)", "--force" },
  { "%f[%w_]force = true", "--force" },
  { "%f[%w_]delete_domains = true", "--delete-domains" },
  { "%f[%w_]purge = false", "--no-purge" },
  { "%f[%w_]strict = true", "--strict" },
  { "a key that tells them apart %(opts%.key%)", "a key that tells them apart (--key)" },
  { "give opts%.key", "give --key" },
  { "%f[%w_]needs delete_domains%f[^%w_]", "needs --delete-domains" },
  { "%f[%w_]max_retry_wait%f[^%w_]", "--max-retry-wait" },
  { "%f[%w_]max_retries%f[^%w_]", "--max-retries" },
  { "%f[%w_]rate_limit%f[^%w_]", "--rate-limit" },
}

--- msg with the library's option names put as the tool's flags.
function words.of(msg)
  msg = tostring(msg)
  for _, rule in ipairs(REWRITES) do msg = msg:gsub(rule[1], rule[2]) end
  return msg
end

return words
