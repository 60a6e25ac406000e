-- wrk script for benches/load/run.sh: each request picks a random token and
-- one of four routes for that token's file (file info, content, thumbnail,
-- users/me). The same script drives direct, nginx and scopegate, so the
-- three see byte-identical traffic.
--
-- wrk args (after --): MODE TOKENS [EXTRA OFFSET]
--   MODE hits     every request uses a token from TOKENS (all cached after warm-up)
--   MODE miss     1% use the next never-seen token from EXTRA, from line OFFSET
--                 on (a grant-cache miss: AES-GCM open + claims + insert)
--   MODE revoked  1% use a random token from EXTRA (revoked: answered 401)
--   MODE redact   every request lists the token's folder (100 entries) asking
--                 for `shared_link`, which the tokens' scopes do not cover: the
--                 gateway filters `fields` and redacts the answer (TOKENS are
--                 folder tokens)

local tokens, extra = {}, {}
local mode, offset, next_extra = "hits", 0, 0
used = 0  -- global: read by done() through thread:get
local threads = {}

local function load(path, into)
  for line in io.lines(path) do
    local t, id = line:match("^(%S+) (%S+)$")
    if t then into[#into + 1] = { "Bearer " .. t, id } end
  end
end

function setup(thread)
  threads[#threads + 1] = thread
end

function init(args)
  mode = args[1] or "hits"
  load(args[2], tokens)
  if args[3] and args[3] ~= "-" then load(args[3], extra) end
  offset = tonumber(args[4] or "0")
  next_extra = offset
  math.randomseed(os.time() + offset)
end

local routes = {
  function(id) return "/2.0/files/" .. id end,
  function(id) return "/2.0/files/" .. id .. "/content" end,
  function(id) return "/2.0/files/" .. id .. "/thumbnail.png" end,
  function(id) return "/2.0/users/me" end,
}

local listing = "/items?fields=id,type,name,size,modified_at,shared_link&limit=100"

function request()
  if mode == "redact" then
    local tok = tokens[math.random(#tokens)]
    return wrk.format("GET", "/2.0/folders/" .. tok[2] .. listing, { ["Authorization"] = tok[1] }, nil)
  end
  local tok
  if mode ~= "hits" and #extra > 0 and math.random() < 0.01 then
    if mode == "miss" then
      next_extra = next_extra + 1
      if next_extra > #extra then next_extra = 1 end
      tok = extra[next_extra]
      used = used + 1
    else
      tok = extra[math.random(#extra)]
    end
  else
    tok = tokens[math.random(#tokens)]
  end
  return wrk.format("GET", routes[math.random(4)](tok[2]), { ["Authorization"] = tok[1] }, nil)
end

function done(summary, latency, requests)
  local n = 0
  for _, t in ipairs(threads) do n = n + (tonumber(t:get("used")) or 0) end
  io.write(string.format("extra_tokens_used=%d\n", n))
end
