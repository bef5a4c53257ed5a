-- The library's messages put in the command-line tool's words
-- (cli_words.lua): each option a Lua caller sets becomes the flag a shell
-- user gives, and nothing else in the message changes.
local words = require("cloudflare.email_security.cli_words")

describe("the tool's words for the library's messages", function()
  it("names the flag for each option the library's messages name", function()
    for _, case in ipairs({
      { "check the plan, then apply with force = true (--force) if it is meant",
        "check the plan, then apply with --force if it is meant" },
      { "apply refuses this without --force (force = true)", "apply refuses this without --force" },
      { "3 not deleted (needs delete_domains)", "3 not deleted (needs --delete-domains)" },
      { "plan with purge = false to keep them", "plan with --no-purge to keep them" },
      { "the API asks to retry after 90 s, longer than max_retry_wait: not retried",
        "the API asks to retry after 90 s, longer than --max-retry-wait: not retried" },
      { "gave up after max_retries tries", "gave up after --max-retries tries" },
      { "held by rate_limit", "held by --rate-limit" },
      { "delete one of them, or plan with a key that tells them apart (opts.key)",
        "delete one of them, or plan with a key that tells them apart (--key)" },
    }) do
      assert.are.equal(case[2], words.of(case[1]))
    end
  end)

  it("leaves a longer name that only contains an option's alone", function()
    for _, text in ipairs({ "max_retries_total is 3", "my_max_retry_wait", "xforce = true", "undelete_domains = true" }) do
      assert.are.equal(text, words.of(text))
    end
  end)

  it("takes an error value as its text", function()
    local err = setmetatable({}, { __tostring = function() return "apply with force = true" end })
    assert.are.equal("apply with --force", words.of(err))
  end)
end)
