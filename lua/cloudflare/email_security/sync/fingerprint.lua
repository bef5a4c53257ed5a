-- What a saved plan was made against, in a few bytes: a fingerprint of a
-- resource's listing, which apply of the saved plan compares with the
-- listing it makes then. Every field of every entry counts (a changed
-- comment, a new entry, one gone); the order the server lists them in does
-- not (each entry's own checksum, sorted, is what is summed up).
--
-- zlib's CRC-32 and Adler-32 (the C core's checksum), not a cryptographic
-- digest: they tell that the account moved, by accident or by someone
-- else's hand; a saved plan is the user's own file, which nobody forges
-- to deceive its author.

local core = require("cloudflare.email_security.core")
local write_json = require("cloudflare.email_security.schema.body").write

local checksum = core.checksum
local concat, format, sort = table.concat, string.format, table.sort

local fingerprint = {}

--- An accumulator, for a listing walked a page at a time (plan never
--- holds it whole): add(entry) for each, then result() -> the fingerprint.
function fingerprint.new()
  local sums = {}
  local acc = {}
  function acc.add(e)
    -- body.write orders an object's fields by name: the same entry, the
    -- same text, whatever order its fields came in
    local crc, adler = checksum(write_json(nil, e))
    sums[#sums + 1] = format("%08x%08x", crc, adler)
  end
  function acc.result()
    sort(sums)
    local crc, adler = checksum(concat(sums, "\n"))
    return format("%08x-%08x-%d", crc, adler, #sums)
  end
  return acc
end

--- The fingerprint of a listing (a list of entries as the API gave them):
--- "crc-adler-count", hex.
function fingerprint.of(list)
  local acc = fingerprint.new()
  for _, e in ipairs(list) do acc.add(e) end
  return acc.result()
end

return fingerprint
