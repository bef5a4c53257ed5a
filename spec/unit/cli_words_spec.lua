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
      { "apply refuses this without --force (force = true)", "apply refuses this without --force" },
      { "Check the plan, then apply with --force (force = true) if it is meant",
        "Check the plan, then apply with --force if it is meant" },
      { "3 not deleted (needs delete_domains)", "3 not deleted (needs --delete-domains)" },
      { "the API asks to retry after 90 s, longer than max_retry_wait: not retried",
        "the API asks to retry after 90 s, longer than --max-retry-wait: not retried" },
      { "delete one of them, or plan with a key that tells them apart (opts.key)",
        "delete one of them, or plan with a key that tells them apart (--key)" },
    }) do
      assert.are.equal(case[2], words.of(case[1]))
    end
  end)

  it("leaves a value that only looks like an option alone", function()
    for _, text in ipairs({ "pattern: rate_limit@example.com", "comments: ticket 7: force = true, purge = false",
                            "max_retries_total is 3", "needs delete_domains = true" }) do
      assert.are.equal(text, words.of(text))
    end
  end)

  it("in a plan, rewrites its own lines and never a line that shows an entry", function()
    local plan = table.concat({
      '+ allow_policies create pattern="x" with comments: "apply with force = true (--force)"',
      '~ allow_policies update pattern="y" (id): comments: "(needs delete_domains)" -> "z"',
      '- domains delete domain="a (needs delete_domains)" (id)',
      '  impersonation_registry skip name="n" (id): longer than max_retry_wait: not retried',
      "0 to create, 0 to update, 0 to delete, 0 unchanged, 2 not deleted (needs delete_domains)",
    }, "\n")
    local lines = {}
    for line in words.of_plan(plan):gmatch("[^\n]+") do lines[#lines + 1] = line end
    local given = {}
    for line in plan:gmatch("[^\n]+") do given[#given + 1] = line end
    for i = 1, 4 do assert.are.equal(given[i], lines[i]) end
    assert.are.equal("0 to create, 0 to update, 0 to delete, 0 unchanged, 2 not deleted (needs --delete-domains)",
                     lines[5])
  end)

  it("takes an error value as its text", function()
    local err = setmetatable({}, { __tostring = function() return "apply with force = true (--force)" end })
    assert.are.equal("apply with --force", words.of(err))
  end)
end)
