-- The library's messages in the tool's own words. A message the module
-- writes for a Lua caller names its options as Lua does (`force = true`,
-- `delete_domains`, `max_retry_wait`); a shell user can only give the
-- tool's flags, so the tool's messages pass through here and name the
-- flag instead. The library keeps its words: they are right for the code
-- that calls it.
--
-- Only the library's own phrases are rewritten, each whole: a message may
-- quote a value from a file or the server ("rate_limit@example.com", a
-- comment saying "force = true"), which must reach the user as it is.

local words = {}

local REWRITES = {
  { "apply with force = true %(%-%-force%)", "apply with --force" },
  { "without %-%-force %(force = true%)", "without --force" },
  { "apply with %-%-force %(force = true%)", "apply with --force" },
  { "%(needs delete_domains%)", "(needs --delete-domains)" },
  { "longer than max_retry_wait: not retried", "longer than --max-retry-wait: not retried" },
  { "a key that tells them apart %(opts%.key%)", "a key that tells them apart (--key)" },
  { "has no natural key: give opts%.key", "has no natural key: give --key" },
}

--- msg with the library's option names put as the tool's flags.
function words.of(msg)
  msg = tostring(msg)
  for _, rule in ipairs(REWRITES) do msg = msg:gsub(rule[1], rule[2]) end
  return msg
end

-- The lines of a plan that show an entry: what the file or the server
-- holds, never rewritten.
local ENTRY_LINE = { "^%+ ", "^~ ", "^%- ", "^  " }

--- A plan's text with the library's phrases put in the tool's words on
--- the lines that are the plan's own (counts, reasons, refusals), not on
--- those that show an entry.
function words.of_plan(text)
  return (text:gsub("[^\n]+", function(line)
    for _, start in ipairs(ENTRY_LINE) do
      if line:find(start) then return line end
    end
    return words.of(line)
  end))
end

return words
