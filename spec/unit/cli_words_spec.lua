-- The library's messages put in the command-line tool's words
-- (cli_words.lua): each phrase of the library that names a Lua option
-- names the tool's flag instead, and nothing else changes: a value from a
-- file or the server that looks like an option stays as it is.
local words = require("cloudflare.email_security.cli_words")

describe("the tool's words for the library's messages", function()
  it("names the flag in each of the library's phrases that name an option", function()
    for _, case in ipairs({
      { "check the plan, then apply with force = true (--force) if it is meant",
        "check the plan, then apply with --force if it is meant" },
      { "    ! would delete 9 of the 10 existing entries in url_ignore_patterns: apply refuses this without --force"
          .. " (force = true)",
        "    ! would delete 9 of the 10 existing entries in url_ignore_patterns: apply refuses this without --force" },
      { "Check the plan, then apply with --force (force = true) if it is meant",
        "Check the plan, then apply with --force if it is meant" },
      { "3 not deleted (needs delete_domains)", "3 not deleted (needs --delete-domains)" },
      { "503 (the API asks to retry after 90 s, longer than max_retry_wait: not retried)",
        "503 (the API asks to retry after 90 s, longer than --max-retry-wait: not retried)" },
      { "delete one of them, or plan with a key that tells them apart (opts.key)",
        "delete one of them, or plan with a key that tells them apart (--key)" },
    }) do
      assert.are.equal(case[2], words.of(case[1]))
    end
  end)

  it("leaves a value that only looks like an option alone", function()
    for _, text in ipairs({ "pattern: rate_limit@example.com", "comments: ticket 7: force = true, purge = false",
                            "max_retries_total is 3", "needs delete_domains = true", "x (needs delete_domains) y",
                            "apply with force = true (--force)" }) do
      assert.are.equal(text, words.of(text))
    end
  end)

  it("in a plan, rewrites its own lines, whatever their indent, and never an entry's, a warning or a header", function()
    local plan = table.concat({
      "account acc (apply with force = true (--force) if it is meant) at https://api.example",
      '+ allow_policies create pattern="x" with comments: "then apply with force = true (--force) if it is meant"',
      '~ allow_policies update pattern="y" (id): comments: "1 not deleted (needs delete_domains)" -> "z"',
      '    - domains delete domain="a 1 not deleted (needs delete_domains)" (id)',
      '  impersonation_registry skip name="n" (id): longer than max_retry_wait: not retried)',
      "warning: f.csv:2: pattern `x 1 not deleted (needs delete_domains)` holds `(`",
      "0 to create, 0 to update, 0 to delete, 0 unchanged, 2 not deleted (needs delete_domains)",
      "    0 to create, 0 to update, 0 to delete, 1 unchanged, 1 not deleted (needs delete_domains)",
      "    ! would delete 11 of the 12 existing entries: apply refuses this without --force (force = true)",
    }, "\n")
    local lines = {}
    for line in words.of_plan(plan):gmatch("[^\n]+") do lines[#lines + 1] = line end
    local given = {}
    for line in plan:gmatch("[^\n]+") do given[#given + 1] = line end
    for i = 1, 6 do assert.are.equal(given[i], lines[i]) end
    assert.are.equal("0 to create, 0 to update, 0 to delete, 0 unchanged, 2 not deleted (needs --delete-domains)",
                     lines[7])
    assert.are.equal("    0 to create, 0 to update, 0 to delete, 1 unchanged, 1 not deleted (needs --delete-domains)",
                     lines[8])
    assert.are.equal("    ! would delete 11 of the 12 existing entries: apply refuses this without --force", lines[9])
  end)

  it("takes an error value as its text", function()
    local err = setmetatable({}, { __tostring = function()
      return "nothing was sent. Check the plan, then apply with force = true (--force) if it is meant"
    end })
    assert.are.equal("nothing was sent. Check the plan, then apply with --force if it is meant", words.of(err))
  end)
end)
