-- Colour for the lines of a plan, as Terraform gives them: green for what
-- is created, yellow for what is updated, red for what is deleted and for
-- what apply will refuse. Only on a terminal, and never when the user said
-- no: NO_COLOR set to anything non-empty (no-color.org) or --no-color.
-- The colour goes around a line already made printable, so what the
-- server sent can still not reach the terminal as an escape sequence.

local colour = {}

local RESET = "\27[0m"
-- by a line's first characters, as sync/plan_text.lua and the tool write them
local BY_START = {
  { "^%+ ", "\27[32m" },         -- create
  { "^~ ", "\27[33m" },          -- update
  { "^%- ", "\27[31m" },         -- delete
  { "^! ", "\27[1;31m" },        -- refused without --force
  { "^error: ", "\27[31m" },     -- a warning --strict made an error
  { "^warning: ", "\27[33m" },
}

--- Whether to colour: on a terminal, no --no-color, no NO_COLOR.
--- getenv: os.getenv, or a stand-in (the specs).
function colour.wanted(no_color_flag, on_terminal, getenv)
  local no_color = (getenv or os.getenv)("NO_COLOR")
  return not no_color_flag and on_terminal and (no_color == nil or no_color == "")
end

--- text (lines) with each plan line coloured by what it says.
function colour.lines(text)
  return (text:gsub("[^\n]+", function(line)
    for _, rule in ipairs(BY_START) do
      if line:find(rule[1]) then return rule[2] .. line .. RESET end
    end
    return line
  end))
end

return colour
