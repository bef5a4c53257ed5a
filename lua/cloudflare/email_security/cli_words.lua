-- The library's messages in the tool's own words. A message the module
-- writes for a Lua caller names its options as Lua does (`force = true`,
-- `delete_domains`, `max_retry_wait`); a shell user can only give the
-- tool's flags, so the tool's messages pass through here and name the
-- flag instead. The library keeps its words: they are right for the code
-- that calls it.
--
-- Only the library's own phrases are rewritten, each whole and with the
-- words around it that the library writes: a message may quote a value
-- from a file or the server ("rate_limit@example.com", a comment saying
-- "force = true"), which must reach the user as it is.

local words = {}

local REWRITES = {
  { "then apply with force = true %(%-%-force%) if it is meant", "then apply with --force if it is meant" },
  { "then apply with %-%-force %(force = true%) if it is meant", "then apply with --force if it is meant" },
  { ": apply refuses this without %-%-force %(force = true%)$", ": apply refuses this without --force" },
  { " not deleted %(needs delete_domains%)$", " not deleted (needs --delete-domains)" },
  { "longer than max_retry_wait: not retried%)", "longer than --max-retry-wait: not retried)" },
  { "or plan with a key that tells them apart %(opts%.key%)", "or plan with a key that tells them apart (--key)" },
  { " has no natural key: give opts%.key", " has no natural key: give --key" },
}

--- msg with the library's option names put as the tool's flags.
function words.of(msg)
  msg = tostring(msg)
  for _, rule in ipairs(REWRITES) do msg = msg:gsub(rule[1], rule[2]) end
  return msg
end

-- The lines of a plan that are its own words, whatever their indent (a
-- folder's plan indents each resource's): what apply will refuse ("! "),
-- and the counts with their reasons. An entry's line, a warning (which
-- quotes the file) and a header are never rewritten.
local OWN_LINE = { "^%s*! ", "^%s*%d+ to create, " }

--- A plan's text with the library's phrases put in the tool's words on
--- the plan's own lines only.
function words.of_plan(text)
  return (text:gsub("[^\n]+", function(line)
    for _, start in ipairs(OWN_LINE) do
      if line:find(start) then return words.of(line) end
    end
    return line
  end))
end

return words
